"""The watchdog's own metrics, on a registry per app (never the global one)."""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from watchdog import __version__
from watchdog.core.evaluator import State
from watchdog.model import ActionResult
from watchdog.rules.model import RuleSpec

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Every metric the watchdog exposes on /metrics, grouped so tests can build their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        Info("watchdog_build", "Build information.", registry=r).info(
            {"version": __version__, "python": platform.python_version()}
        )
        self.signal_value = Gauge(
            "watchdog_signal_value",
            "Latest value of each signal (NaN when blind).",
            ["signal"],
            registry=r,
        )
        self.signal_requests = Gauge(
            "watchdog_signal_requests",
            "Requests behind the latest ratio sample, where known.",
            ["signal"],
            registry=r,
        )
        self.rule_state = Gauge(
            "watchdog_rule_state",
            "1 for the state each rule is in.",
            ["rule", "state"],
            registry=r,
        )
        self.rule_blind = Gauge(
            "watchdog_rule_blind",
            "1 while a rule has had no evidence for blind_after or longer.",
            ["rule"],
            registry=r,
        )
        self.samples = Counter(
            "watchdog_samples_total",
            "Samples taken, by source and kind (value, no_data, error).",
            ["source", "kind"],
            registry=r,
        )
        self.source_errors = Counter(
            "watchdog_source_errors_total",
            "Samples a source could not give (error or no data).",
            ["source", "kind"],
            registry=r,
        )
        self.source_last_answer = Gauge(
            "watchdog_source_last_answer_timestamp_seconds",
            "When a source last answered (with data or a well-formed 'no data').",
            ["source"],
            registry=r,
        )
        self.sample_duration = Histogram(
            "watchdog_sample_duration_seconds",
            "Time to take one round of samples from a source.",
            ["source"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.evaluation_duration = Histogram(
            "watchdog_evaluation_duration_seconds",
            "Time to evaluate the rules for one sample.",
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1),
            registry=r,
        )
        self.reloads = Counter(
            "watchdog_rules_reloads_total",
            "Rules reloads by result (success, failure).",
            ["result"],
            registry=r,
        )
        self.reload_ok = Gauge(
            "watchdog_rules_last_reload_successful",
            "1 if the last rules reload worked.",
            registry=r,
        )
        self.reload_time = Gauge(
            "watchdog_rules_last_reload_success_timestamp_seconds",
            "When the rules last loaded successfully.",
            registry=r,
        )
        self.rules_loaded = Gauge(
            "watchdog_rules_loaded",
            "Rules currently loaded.",
            registry=r,
        )
        self.api_refused = Counter(
            "watchdog_api_refused_total",
            "Control API requests refused, by reason.",
            ["reason"],
            registry=r,
        )
        self.decisions = Counter(
            "watchdog_decisions_total",
            "Decisions taken, by rule and kind.",
            ["rule", "kind"],
            registry=r,
        )
        self.leader = Gauge(
            "watchdog_leader",
            "1 while this replica leads (acts on decisions); 0 while it follows (samples only).",
            registry=r,
        )
        self.rule_threshold = Gauge(
            "watchdog_rule_threshold",
            "Each rule's threshold in its signal's unit, to graph against watchdog_signal_value.",
            ["rule", "signal", "comparison"],
            registry=r,
        )
        self.dry_run = Gauge(
            "watchdog_dry_run",
            "1 while the whole process runs in dry-run (WATCHDOG_DRY_RUN / --dry-run): "
            "decisions are made, no mutating call is sent.",
            registry=r,
        )
        self.rule_dry_run = Gauge(
            "watchdog_rule_dry_run",
            "1 for a rule with dry_run: true (it never acts, whatever the process mode).",
            ["rule"],
            registry=r,
        )
        self.silenced = Gauge(
            "watchdog_silenced",
            "1 while an active silence covers every action (no matchers: a signal, the "
            "flag file, --silenced, or an API silence without matchers).",
            registry=r,
        )
        self.silences_active = Gauge(
            "watchdog_silences_active",
            "Active silences, of every origin.",
            registry=r,
        )
        self.actions = Counter(
            "watchdog_actions_total",
            "Actions carried out (rollback, purge, notify), by outcome: success, failure, "
            "dry_run, replayed (already in the journal), skipped, refused (the store failed).",
            ["action", "outcome"],
            registry=r,
        )
        # Present at 0 from the start, so increase() sees the first failure.
        for action in ("rollback", "purge", "notify"):
            for outcome in ("success", "failure"):
                self.actions.labels(action=action, outcome=outcome)

    def set_thresholds(self, rules: Iterable[RuleSpec]) -> None:
        """Replace every ``watchdog_rule_threshold`` series with the given rules' (after a
        reload a rule may have changed signal or comparison, so start from empty)."""
        self.rule_threshold.clear()
        for rule in rules:
            self.rule_threshold.labels(
                rule=rule.name, signal=rule.signal, comparison=rule.comparison
            ).set(rule.threshold.value)

    def set_rules(self, rules: Iterable[RuleSpec], before: Iterable[RuleSpec] = ()) -> None:
        """Per-rule gauges that follow the rules files: thresholds and dry_run. Given the
        rules they replace (a reload), only the series of rules that changed are redone:
        a reload of 10,000 rules that edits one touches a few series, not 20,000."""
        rules = list(rules)
        old = {rule.name: _gauged(rule) for rule in before}
        if not old:
            self.set_thresholds(rules)
            self.rule_dry_run.clear()
            for rule in rules:
                self.rule_dry_run.labels(rule=rule.name).set(1 if rule.dry_run else 0)
            return
        new = {rule.name: (rule, _gauged(rule)) for rule in rules}
        for name, (signal, comparison, _, _) in old.items():
            if name not in new or new[name][1] != old[name]:
                with contextlib.suppress(KeyError):
                    self.rule_threshold.remove(name, signal, comparison)
                with contextlib.suppress(KeyError):
                    self.rule_dry_run.remove(name)
        for name, (rule, gauged) in new.items():
            if old.get(name) != gauged:
                self.rule_threshold.labels(
                    rule=name, signal=rule.signal, comparison=rule.comparison
                ).set(rule.threshold.value)
                self.rule_dry_run.labels(rule=name).set(1 if rule.dry_run else 0)

    def set_modes(self, dry_run: bool, silenced: bool, silences_active: int) -> None:
        self.dry_run.set(1 if dry_run else 0)
        self.silenced.set(1 if silenced else 0)
        self.silences_active.set(silences_active)

    def count_action(self, result: ActionResult) -> None:
        """Count one action's outcome in ``watchdog_actions_total``."""
        self.actions.labels(
            action=result.action.removeprefix("would-"), outcome=action_outcome(result)
        ).inc()

    def set_rule_state(self, rule: str, state: State) -> None:
        for candidate in State:
            self.rule_state.labels(rule=rule, state=candidate.value).set(
                1.0 if candidate is state else 0.0
            )

    def forget_rule(self, rule: str) -> None:
        for candidate in State:
            with contextlib.suppress(KeyError):
                self.rule_state.remove(rule, candidate.value)
        with contextlib.suppress(KeyError):
            self.rule_blind.remove(rule)


def _gauged(rule: RuleSpec) -> tuple[str, str, float, bool]:
    """What the per-rule gauges show of a rule."""
    return (rule.signal, rule.comparison, rule.threshold.value, rule.dry_run)


def action_outcome(result: ActionResult) -> str:
    """success, failure, dry_run, replayed or skipped: the ``outcome`` label."""
    if result.would:
        return "dry_run"
    if result.data.get("replayed"):
        return "replayed"
    if result.data.get("skipped"):
        return "skipped"
    return "success" if result.ok else "failure"
