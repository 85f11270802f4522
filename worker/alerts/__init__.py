"""Notice-period alerting: detectors over the ledger, the alert lifecycle, channels, escalation, reports.

- ``snapshot`` → ``detectors`` → ``evaluator``: what holds now, judged on a read-only picture of the ledger.
- ``lifecycle``: alert state changes (compare-and-set, each with a transition row); ``models``: their tables.
- ``notify`` (first notice, escalation, recovery) over ``channels`` (webhook, mail) with ``payload`` and
  ``signing``; ``escalation``: the step arithmetic; ``probe``: `regsync alerts test`.
- ``config`` / ``notice_settings``: the ``[alerts]`` table and audited changes to it; ``queries``: reads and ack.
- ``access`` / ``operator``: access anomalies (failed-auth bursts, probing keys) and the installation-wide
  (operator) alert settings for alerts that belong to no connection.
- ``report`` (facts in JSON) with ``report_facts`` (channels, waivers, stuck runs, reasons), ``report_text``,
  ``report_html`` and ``report_timeline`` (the SVG lanes): the compliance report; ``siem``: the SIEM feed.
"""
