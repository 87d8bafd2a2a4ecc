"""Replays over recorded history, rule unit tests and plots: the live engine and
incident manager on a virtual clock.

- ``columnar``: The evaluator over whole arrays: each rule's state at every sample, ``step``'s
  semantics in runs of breaches and gaps (the ``fast`` extra).
- ``columnar_replay``: The columnar replay: only state changes (and ticks while an incident is
  open) handed to the same engine states, incident manager and guards.
- ``columns``: A signal's replayed samples as arrays (what ``samples_of`` builds one by one).
- ``decimals``: Decimal numbers in a byte buffer → exactly ``float()``'s floats, over whole
  arrays.
- ``labels``: ``labels.json``: known incidents, and which a rule's firing episodes caught.
- ``matrix_fast``: A saved ``query_range`` body straight into arrays (exact decimal parsing).
- ``plot``: ``backtest --plot FILE``: one panel per signal, so a person sees at a glance why a
  rollback would or would not have happened.
- ``read_ahead``: Big recording files parsed two at a time, errors raised in reading order.
- ``recordings``: Recordings: a signal's history as ``DIR/SIGNAL.json`` files or fetched from
  Prometheus, and the samples a live daemon would have seen from it.
- ``render``: A backtest's output: JSON lines for machines, a timeline and summary for people.
- ``replay``: The replay: the live ``Engine`` and ``IncidentManager`` on a virtual clock, fed
  recorded samples in time order, with the stand-ins for the outside world; each state change,
  decision and incident step becomes a timeline event.
- ``ruletest``: ``rollback-watchdog test rules FILE...``: unit tests for rules files, in the
  spirit of ``promtool test rules``.
- ``ruletest_file``: The rule test file format, its outcomes, and its loading.
- ``ruletest_inputs``: A rule test's ``input_series`` as the samples a live daemon would see.
- ``run``: Running a backtest: recordings in, the replay run, the summary counted from its
  timeline; and the helpers that keep a month of samples fast to replay.
- ``samples``: The samples a live daemon would have seen from a recording (gaps, NaN, Inf,
  errors over requests), as the live prometheus source reads them.
- ``series_notation``: promtool's expanding notation for input series, both ways.
- ``splits``: Gradual deployments in the backtest and ``test rules``: the split form of a
  deployments entry, told to the engine as live, and per-version recordings for canary rules.
- ``standins``: The outside world during a replay: targets read the recorded deploy history at
  the virtual now, purges and notifiers send nothing, and the store is SQLite in memory.
- ``sweep``: ``backtest --sweep``: one rule's settings over a grid, every combination replayed.
- ``sweep_render``: A sweep's table, JSON document and heat map.
- ``timeline``: What a backtest says: timeline events, per-rule and overall summaries, and the
  result that carries them (with the replayed samples and each rule's state spans).
- ``times``: Times (RFC 3339, Unix seconds, ``now-7d``) and the recorded deploy history.
"""
