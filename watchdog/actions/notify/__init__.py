"""Notifiers: Slack, generic webhook, PagerDuty, Statuspage, Sentry."""
