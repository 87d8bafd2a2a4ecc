"""The HTTP face of a running watchdog: /metrics, health, status, reload, silences and
the operator's console (``/``).

- ``alertmanager``: ``/api/v1/alertmanager/<source>``: Alertmanager's webhook notifications
  for an ``alertmanager`` source.
- ``app``: The watchdog's HTTP face: /metrics, /healthz, /readyz, /-/reload and /api/v1/status.
- ``openapi``: The OpenAPI 3.1 document of the control API, served at
  ``/api/v1/openapi.json``.
- ``openapi_push``: The OpenAPI operations of the push routes (Alertmanager, Tail Worker).
- ``console``: The operator's console: a server-rendered page on the daemon's own listen
  address (its templates and static files travel in the package).
- ``console_data``: The console's reads of the store and the targets: incidents with their
  timelines, targets' live version, rollback candidate and recent deploys.
- ``console_guard``: Who may see the console and post to it: loopback or the API token,
  same-origin and CSRF checks on every form.
- ``console_view``: What the console shows, as typed rows: the header, every rule with its
  sparkline, the silences.
- ``guard``: The control API's checks when no token is configured (loopback mode).
- ``push``: What the push routes share: their paths (the push token's) and the source
  lookup.
- ``ramps``: ``/api/v1/ramps``: start, list, hold, promote and abort the daemon's ramps;
  their OpenAPI entries.
- ``silences``: ``/api/v1/silences``: create, list and expire silences over HTTP (amtool's
  model).
- ``sparkline``: A rule's last hour as a small inline SVG, drawn on the server.
- ``tail``: ``/api/v1/tail/<source>``: a Tail Worker's events for a ``cloudflare-tail`` source.
- ``static/``: The console's stylesheet and its small polling script (served by the daemon).
- ``templates/``: The console's Jinja2 templates (autoescaped).
"""
