"""The HTTP face of a running watchdog: /metrics, health, status, reload and silences.

- ``alertmanager``: ``/api/v1/alertmanager/<source>``: Alertmanager's webhook notifications
  for an ``alertmanager`` source.
- ``app``: The watchdog's HTTP face: /metrics, /healthz, /readyz, /-/reload and /api/v1/status.
- ``guard``: The control API's checks when no token is configured (loopback mode).
- ``silences``: ``/api/v1/silences``: create, list and expire silences over HTTP (amtool's
  model).
"""
