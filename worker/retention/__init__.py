"""Retention and data minimisation: what the ledger keeps, for how long, and how it forgets.

- ``policy``: the ``[retention]`` table of a connection file and the kinds of data it ages;
- ``purge``: the bounded-batch purge of data past its age (beat, CLI, API), audited with counts;
- ``erase``: ``forget`` one company or record everywhere (also run for a register's ``Fjernet``/``REMOVED``);
- ``minimise``: what is never stored (sole-proprietorship samples, values quoted in failure messages);
- ``facts``: the retention section of the compliance report.
"""
