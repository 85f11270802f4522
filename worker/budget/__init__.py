"""The Salesforce API budget guard: how much regsync may spend per day, pausing and resuming runs.

- ``guard``: the rule as a pure function; ``store``: where the numbers live (Redis or local);
  ``control``: counting calls, pausing a run before a chunk would overspend, resuming it.
"""
