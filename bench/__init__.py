"""regsync's benchmarks: throughput at the registry's rate limit, API calls against their lower bound, a naive
baseline run in the same process, planning at a million Accounts, and ledger query latency at scale.

Run them with ``make bench`` (``python -m bench``); ``python -m bench --help`` lists the options.
"""
