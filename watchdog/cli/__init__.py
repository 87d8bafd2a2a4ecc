"""The ``rollback-watchdog`` verbs, in the promtool/amtool style.

- ``main``: The ``rollback-watchdog`` command line, in the promtool/amtool style.
- ``ops``: Operator commands: ``silence add|query|expire``, ``status``, ``postmortem``; it
  registers ``targets`` and ``rollback`` too.
- ``rollback``: The ``targets`` and ``rollback`` verbs: the version ledger's reasons, and a
  person's rollback through the incident manager with the same verification.
- ``status_view``: The head of ``rollback-watchdog status``: whether the watchdog would act at
  all.
- ``tune``: Commands for tuning rules: ``backtest``, ``record`` and ``test rules``.
"""
