"""Where samples come from: one ``Source`` protocol and one registry keyed by the
rules file's ``type:``. Every source answers a value, no data or an error, never a guess.

- ``_transport``: How the HTTP sources word a failed fetch.
- ``alertmanager``: The ``alertmanager`` source: Alertmanager's webhook notifications as
  evidence.
- ``base``: The ``Source`` protocol and what every source is built with.
- ``cloudflare``: The ``cloudflare`` source: Workers invocation analytics over the GraphQL API.
- ``cloudflare_tail``: The ``cloudflare-tail`` source: a Worker's invocations per version as
  a Tail Worker pushes them, seconds after each request.
- ``cloudflare_versions``: The ``cloudflare`` source in ``mode: versions``: a Worker's
  invocations per version, for canary rules.
- ``expfmt``: A fast, selective parser of the Prometheus text exposition format (version 0.0.4).
- ``flow``: The ``flow`` source: a synthetic user journey run against a Worker split's new
  and old version, each pinned with the version-override header.
- ``histogram``: ``histogram_quantile`` for classic histograms, exactly as PromQL computes it.
- ``probe``: The ``probe`` source: one HTTP GET of a health URL per call.
- ``prometheus``: The ``prometheus`` source: PromQL instant queries over the HTTP API.
- ``prometheus_range``: Range queries and the matrix reader, for the backtest's recordings.
- ``registry``: Source types by the rules file's ``type:`` key: one dict, one builder.
- ``scrape``: The ``scrape`` source: read an app's own ``/metrics`` page, no Prometheus server.
"""
