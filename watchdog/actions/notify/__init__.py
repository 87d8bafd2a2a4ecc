"""Notifiers: Slack, generic webhook, PagerDuty, Statuspage, Sentry, Grafana annotations,
Alertmanager."""
