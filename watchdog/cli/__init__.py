"""The ``rollback-watchdog`` verbs, in the promtool/amtool style.

- ``main``: The ``rollback-watchdog`` command line, in the promtool/amtool style.
- ``ops``: Operator commands: ``targets``, ``rollback``, ``silence add|query|expire``,
  ``status``, ``postmortem``.
- ``status_view``: The head of ``rollback-watchdog status``: whether the watchdog would act at
  all.
- ``tune``: Commands for tuning rules: ``backtest``, ``record`` and ``test rules``.
"""
