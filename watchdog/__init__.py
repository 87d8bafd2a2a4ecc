"""rollback-watchdog: detect a bad deploy, roll it back, verify, escalate.

Kept free of side effects on purpose: other packages import a top-level
``watchdog`` by name (see README, "The import name").
"""

__version__ = "0.1.0"
