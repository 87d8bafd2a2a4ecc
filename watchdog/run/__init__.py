"""The running daemon: sampling loops, reloads, the runtime wired from the rules, and
leader election so that only one replica acts.

- ``burn_history``: Burn-rate history across restarts: closed minutes of the signals burn-rate
  rules watch kept in the store, given back to the engine on start.
- ``coalesce``: At most one run of a job at a time, later calls sharing the next (reloads).
- ``daemon``: The daemon's core: sampling loops feeding the engine, reloads, decisions out.
- ``deadline``: One extra sample at a pending rule's ``for:`` deadline and at the end of a
  verification window, rate-limited per interval.
- ``deploys``: Deploys the live daemon sees, told to the engine for deploy-regression rules
  and, for canary rules, the live split (new vs old version, percentage, author).
- ``ha``: Only the leader acts; every replica samples.
- ``leader``: Which replica acts.
- ``preflight``: One preflight for a configuration: settings, rules and every secret the rules
  need, all problems at once.
- ``sampling``: Signals grouped by source and interval, one round of a group's samples, and
  readiness.
- ``ramp``: Ramps the daemon owns: a new Worker version moved through percentage steps while
  the canary rules pass, every split journalled and posted as a compare-and-swap.
- ``ramp_restore``: After a restart or an election: each active ramp reconciled with what is
  live (resumed when clear, back to 100 % of the old version when not).
- ``ramp_steps``: A ramp's pure parts: steps parsed, each step's split, what the live
  deployment means for a ramp, and the canary rules' gate.
- ``runtime``: Everything a running watchdog is made of, wired once: store, silences, actions,
  playbook, incident manager and the sampling daemon.
"""
