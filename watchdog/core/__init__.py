"""The pure heart: signal windows, the evaluator's step function, the decider and the
engine. No I/O and no clock reads: the daemon, the backtest and the rule tests all
drive this same code with their own clocks and sample feeds.

- ``burn``: SLO burn rates (the SRE workbook's multiwindow, multi-burn-rate alerts), on counts.
- ``canary``: Is a split's new version worse than its old one? A sequential test on both
  versions' error counts over the same minutes.
- ``decider``: From rule state changes to decisions: the severity matrix applied to one rule.
- ``decision``: What the evaluator and decider hand to the actions: an explicit, complete
  decision.
- ``engine``: The one engine: samples in, rule states, transitions and decisions out.
- ``evidence``: How sure a count of errors makes us: the exact (Clopper-Pearson)
  binomial interval.
- ``evaluator``: The evaluator: a pure step function ``(rule, state, sample) -> state``.
- ``minutes``: Per-minute counts for the burn-rate windows (``core.burn``): each minute's
  errors and requests, oldest first, and the totals of a trailing window.
- ``regression``: Did a deploy make errors worse? An anytime-valid sequential test on two
  binomials.
- ``state``: A rule's state between samples, as the evaluator (``core.evaluator``) keeps it.
- ``window``: A bounded, time-ordered buffer of one signal's recent samples, and the
  sliding count window of a confidence rule.
"""
