"""``python -m bench`` (``make bench``): run regsync's benchmarks; ``--help`` for options, ``--quick`` to smoke."""

from bench.suite import main

raise SystemExit(main())
