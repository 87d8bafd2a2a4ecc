"""What the watchdog does with a decision, safely: incidents and their phases,
guards, the rollback choice, verification, escalation, silences and the post-mortem.

- ``escalation``: The escalation ladder, and what people hear when the watchdog cannot act.
- ``guards``: Before a rollback: may this target be rolled back now?.
- ``lifecycle``: An open incident's way to resolved: each tick moves it on at its deadlines
  (grace, escalate_at, a lifted silence, a resumed rollback, verification, the stable period), a
  rule's resolution may close it, and closing writes the post-mortem draft.
- ``manager``: The incident manager, the package's public face: decisions open, join and resolve
  incidents; ``tick`` and ``clock_jumped`` move their deadlines, under one lock.
- ``matchers``: A silence's matchers, the guards on new ones, and regexes judged once against
  the known names.
- ``model``: What an incident is: its phases, its record and decision, and the shared constants.
- ``outbound``: What notifiers hear besides an incident's steps: silences added or expired,
  and open incidents re-sent to those that forget (Alertmanager).
- ``postmortem``: The runbook's post-mortem template, filled with an incident's real timeline.
- ``recorder``: Bookkeeping: every step an event in the store, and the notifications that go
  with it.
- ``regex_syntax``: The syntax of a matcher's regular expression: a parser into a small tree.
- ``restore``: After a restart or an election: the store's open incidents back in memory, and
  actions a crash left at 'intent' reconciled with what is live.
- ``rollback``: Carrying out a rollback: plan per target (guards, silences, the journal when
  resumed), run the playbook, record the outcome, then verify or escalate.
- ``safe_regex``: Regular expressions for silence matchers, matched without backtracking.
- ``silence``: Silences: the Alertmanager model applied to *actions*.
- ``state``: An incident's typed state (what it decided, waits for and did) and its strict-JSON
  form in the store, with the format before it still read.
- ``verification``: Verification after a rollback: each check's goal (below a value, or back to
  the pre-incident baseline) met within its time, or not.
"""
