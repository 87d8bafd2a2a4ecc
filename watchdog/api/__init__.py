"""The HTTP face of a running watchdog: /metrics, health, status, reload and silences.

- ``app``: The watchdog's HTTP face: /metrics, /healthz, /readyz, /-/reload and /api/v1/status.
- ``openapi``: The OpenAPI 3.1 document of the control API, served at
  ``/api/v1/openapi.json``.
- ``guard``: The control API's checks when no token is configured (loopback mode).
- ``silences``: ``/api/v1/silences``: create, list and expire silences over HTTP (amtool's
  model).
"""
