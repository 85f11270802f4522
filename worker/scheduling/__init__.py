"""Schedules per connection: cron in an IANA time zone, admin enable/disable, and the beat tick."""
