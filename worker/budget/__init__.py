"""The Salesforce API budget guard: how much regsync may spend per day, pausing and resuming runs."""
