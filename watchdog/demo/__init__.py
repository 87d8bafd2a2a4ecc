"""The demo and its local stand-ins (the simulated app, a stateful Cloudflare API,
receivers for Slack, PagerDuty, Statuspage and webhooks). Nothing in the product but
the CLI's ``demo`` verb imports this wing.

- ``canary``: The ``canary`` scenario: a gradual deployment of a bad Worker version.
- ``fakes/``: Stateful local stand-ins for remote APIs, served over real loopback sockets in
  tests, the benchmark and the demo.
- ``main``: ``rollback-watchdog demo``: the whole story in one process on loopback.
- ``scenarios``: The scenarios (what each breaks, when it is done, how it is judged) and the
  ``Demo`` they act on.
- ``ramp``: The ``ramp`` scenario: the watchdog ramps a good Worker version, then a bad one.
- ``record``: What a run did that the strict verdict judges (``--record FILE``), and the verdict.
- ``transport``: An httpx transport that holds a virtual clock still during loopback I/O.
- ``view``: The demo's live terminal view: signals against thresholds, rule states and the
  incident timeline.
"""
