"""The ``rollback-watchdog`` verbs, in the promtool/amtool style.

- ``main``: The command line: the parser from each module's ``register``, and dispatch.
- ``completion``: ``completion bash|zsh``: a shell completion script generated from the
  parser.
- ``args``: The settings with the command line's overrides, read the same way by every verb.
- ``output``: ``-o text|json`` for every verb that prints: one strict JSON document.
- ``ops``: Verbs that work without a running watchdog: ``postmortem``; it registers
  ``targets`` and ``rollback`` too.
- ``ramps``: ``ramp start|hold|promote|abort|list``: the daemon's ramps of a Worker's split,
  through its control API.
- ``rollback``: The ``targets`` and ``rollback`` verbs: the version ledger's reasons, and a
  person's rollback through the incident manager with the same verification.
- ``silences``: Verbs that talk to a running watchdog's API: ``silence add|query|expire``,
  ``status`` (with ``--watch``).
- ``status_view``: The head of ``rollback-watchdog status``: whether the watchdog would act at
  all.
- ``tune``: Commands for tuning rules: ``backtest``, ``record`` and ``test rules``.
- ``watch``: ``status --watch``: redraw a verb's text every N seconds, as ``watch`` does.
"""
