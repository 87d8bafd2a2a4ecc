"""Merge parsed rules files into one ``RuleSet``: names defined once, one-file sections
given once, every cross-reference (signal, source, target, purge, notifier) resolved,
and each threshold checked against its signal's unit. Every problem is collected."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from watchdog.rules.fit import (
    counts_errors,
    counts_slow,
    counts_versions,
    overlapping_range,
    reports_traffic,
    threshold_fits,
)
from watchdog.rules.flows import resolve_flow_sources
from watchdog.rules.model import (
    IMPLICIT_FIELDS,
    NAMED_SECTIONS,
    SINGLETON_SECTIONS,
    Defaults,
    RuleSpec,
    SignalSpec,
    SourceSpec,
)
from watchdog.rules.parse import Parsed, Path_, where
from watchdog.rules.response import (
    AfterRollback,
    Correlation,
    EscalationLevel,
    Guards,
    NotifierSpec,
    PurgeSpec,
    SilencePolicy,
    TargetSpec,
    runbook_severities,
)
from watchdog.rules.ruleset import ResolvedSignal, RuleSet
from watchdog.rules.signal_check import resolve_signal


def merge(parsed: list[Parsed]) -> tuple[RuleSet, list[str]]:
    """The files' merged ``RuleSet`` and every problem found (the set is only usable
    when there are none)."""
    return _Merge(parsed).run()


class _Merge:
    """One merge: the sections collected from every file, with where each came from."""

    def __init__(self, parsed: list[Parsed]) -> None:
        self.parsed = parsed
        self.problems: list[str] = []
        self.named: dict[str, dict[str, Any]] = {section: {} for section in NAMED_SECTIONS}
        self.origin: dict[tuple[str, str], tuple[Parsed, Path_]] = {}
        self.singletons: dict[str, Any] = {}
        self.singleton_origin: dict[str, Parsed] = {}
        self.rules: list[tuple[RuleSpec, Parsed, Path_]] = []
        self.rule_origin: dict[str, tuple[Parsed, Path_]] = {}
        self.signals: dict[str, ResolvedSignal] = {}

    def run(self) -> tuple[RuleSet, list[str]]:
        for item in self.parsed:
            self._collect_named(item)
            self._collect_singletons(item)
            self._collect_rules(item)
        self.defaults: Defaults = self.singletons.get("defaults") or Defaults()
        self.sources: dict[str, SourceSpec] = self.named["sources"]
        self.problems.extend(resolve_flow_sources(self.sources, self.origin))
        self._resolve_signals()
        self.targets: dict[str, TargetSpec] = self.named["targets"]
        self.purges: dict[str, PurgeSpec] = self.named["purges"]
        self.notifiers: dict[str, NotifierSpec] = self.named["notifiers"]
        for name, target in self.targets.items():
            item, path = self.origin[("targets", name)]
            self._need(target.purge, self.purges, "purge", item, (*path, "purge"))
        for rule, item, path in self.rules:
            self._check_rule(rule, item, path)
        self._slow_bounds()
        after = self._after_rollback()
        notify = self._notify()
        escalation = self._escalation()
        return self._ruleset(after, notify, escalation), self.problems

    # --- collecting, each name once ------------------------------------------------------

    def _collect_named(self, item: Parsed) -> None:
        for section in NAMED_SECTIONS:
            for name, spec in getattr(item.model, section).items():
                path: Path_ = (section, name)
                if name in self.named[section]:
                    first, first_path = self.origin[(section, name)]
                    self.problems.append(
                        f"{where(item, path)}: duplicate name (first defined at "
                        f"{first.file}:{first.marks.line_of(first_path)})"
                    )
                    continue
                self.named[section][name] = spec
                self.origin[(section, name)] = (item, path)

    def _collect_singletons(self, item: Parsed) -> None:
        for section in SINGLETON_SECTIONS:
            value = getattr(item.model, section)
            if value is None:
                continue
            if section in self.singletons:
                first = self.singleton_origin[section]
                self.problems.append(
                    f"{where(item, (section,))}: defined again (first at "
                    f"{first.file}:{first.marks.line_of((section,))}); give it in one file"
                )
                continue
            self.singletons[section] = value
            self.singleton_origin[section] = item

    def _collect_rules(self, item: Parsed) -> None:
        for index, rule in enumerate(item.model.rules):
            path: Path_ = ("rules", index)
            if rule.name in self.rule_origin:
                first, first_path = self.rule_origin[rule.name]
                self.problems.append(
                    f"{where(item, (*path, 'name'))}: duplicate rule name {rule.name!r} "
                    f"(first at {first.file}:{first.marks.line_of(first_path)})"
                )
                continue
            self.rule_origin[rule.name] = (item, path)
            self.rules.append((rule, item, path))

    # --- cross-references ----------------------------------------------------------------

    def _resolve_signals(self) -> None:
        for name, spec in self.named["signals"].items():
            item, path = self.origin[("signals", name)]
            resolved, found = resolve_signal(name, spec, self.sources, self.defaults, item, path)
            self.problems.extend(found)
            if resolved is not None:
                self.signals[name] = resolved

    def _need(
        self, names: Iterable[str], pool: Mapping[str, Any], what: str, item: Parsed, path: Path_
    ) -> None:
        for index, name in enumerate(names):
            if name not in pool:
                known = ", ".join(sorted(pool)) or "none defined"
                self.problems.append(
                    f"{where(item, (*path, index))}: unknown {what} {name!r} "
                    f"(expected one of: {known})"
                )

    def _check_rule(self, rule: RuleSpec, item: Parsed, path: Path_) -> None:
        signal = _implicit_signal(rule.signal, self.signals, self.sources, self.defaults)
        if signal is None:
            known = ", ".join(sorted(self.signals)) or "none defined"
            self.problems.append(
                f"{where(item, (*path, 'signal'))}: unknown signal {rule.signal!r} "
                f"(expected one of: {known})"
            )
        else:
            self.signals.setdefault(signal.name, signal)
            self._check_signal_fits(rule, signal, item, path)
        self._need(rule.rollback, self.targets, "target", item, (*path, "rollback"))
        if rule.canary is not None and rule.canary.target is not None:
            self._need((rule.canary.target,), self.targets, "target", item, (*path, "canary"))
        if rule.notify is not None:
            self._need(rule.notify, self.notifiers, "notifier", item, (*path, "notify"))

    def _slow_bounds(self) -> None:
        """A latency canary's ``slower_than`` goes to its signal, whose source then
        counts each version's requests over it: one bound per signal."""
        first: dict[str, tuple[float, str]] = {}
        for rule, item, path in self.rules:
            bound = rule.canary.slower_than if rule.canary is not None else None
            signal = self.signals.get(rule.signal)
            if bound is None or signal is None or not counts_versions(signal):
                continue  # an unknown or unfit signal is reported by _check_rule
            at = where(item, (*path, "canary", "slower_than"))
            if not counts_slow(signal):
                self.problems.append(
                    f"{at}: signal {signal.name!r} cannot count slow requests per Worker "
                    "version (use a cloudflare source with mode: versions and api: telemetry, or a "
                    "cloudflare-tail source)"
                )
                continue
            seen = first.setdefault(signal.name, (bound, f"rule {rule.name!r} ({at})"))
            if seen[0] != bound:
                self.problems.append(
                    f"{at}: signal {signal.name!r} already counts requests slower than "
                    f"{seen[0] * 1000:g}ms for {seen[1]}: one bound per signal "
                    "(another bound needs another source)"
                )
                continue
            spec = signal.spec.model_copy(update={"slower_than": bound})
            self.signals[signal.name] = replace(signal, spec=spec)

    def _check_signal_fits(
        self, rule: RuleSpec, signal: ResolvedSignal, item: Parsed, path: Path_
    ) -> None:
        """The rule's bar and evidence suit its signal: threshold in the unit's range,
        traffic for min_requests, both counts for the counted rule kinds."""
        kinds = (rule.regression, rule.burn_rate, rule.canary)
        counted = any(kind is not None for kind in kinds)
        problem = None if counted else threshold_fits(rule.comparison, rule.threshold, signal)
        if problem is not None:
            self.problems.append(f"{where(item, (*path, rule.comparison))}: {problem}")
        if rule.min_requests > 0 and not reports_traffic(signal):
            # Silently ignoring min_requests would act on too little traffic.
            self.problems.append(
                f"{where(item, (*path, 'min_requests'))}: signal {signal.name!r} does not "
                "report its traffic (give the prometheus signal a requests_query, or use "
                "a scrape error_ratio/quantile or cloudflare error_rate signal)"
            )
        if rule.canary is not None and not counts_versions(signal):
            self.problems.append(
                f"{where(item, (*path, 'canary'))}: signal {signal.name!r} does not count "
                "errors per Worker version (use field: versions of a cloudflare source with "
                "mode: versions, or of a cloudflare-tail source)"
            )
        keys = ("confidence", "regression", "burn_rate")
        key = next((k for k in keys if getattr(rule, k) is not None), None)
        if key is not None and not counts_errors(signal):
            self.problems.append(
                f"{where(item, (*path, key))}: signal {signal.name!r} does not "
                "count errors and requests (use a prometheus errors_query/requests_query, "
                "a scrape error_ratio or a cloudflare error_rate signal)"
            )
        overlap = overlapping_range(signal) if key is not None else None
        if key is not None and overlap is not None:
            self.problems.append(f"{where(item, (*path, key))}: signal {signal.name!r}: {overlap}")

    def _after_rollback(self) -> AfterRollback:
        after: AfterRollback = self.singletons.get("after_rollback") or AfterRollback()
        if "after_rollback" not in self.singletons:
            return after
        item = self.singleton_origin["after_rollback"]
        self._need(after.purge, self.purges, "purge", item, ("after_rollback", "purge"))
        for index, check in enumerate(after.verify):
            signal = _implicit_signal(check.signal, self.signals, self.sources, self.defaults)
            at_signal = where(item, ("after_rollback", "verify", index, "signal"))
            if signal is None:
                self.problems.append(f"{at_signal}: unknown signal {check.signal!r}")
                continue
            self.signals.setdefault(signal.name, signal)
            if check.below is not None:
                problem = threshold_fits("below", check.below, signal)
                if problem is not None:
                    at = where(item, ("after_rollback", "verify", index, "below"))
                    self.problems.append(f"{at}: {problem}")
        return after

    def _notify(self) -> tuple[str, ...]:
        notify: tuple[str, ...] = self.singletons.get("notify") or tuple(self.notifiers)
        if "notify" in self.singletons:
            item = self.singleton_origin["notify"]
            self._need(notify, self.notifiers, "notifier", item, ("notify",))
        return notify

    def _escalation(self) -> tuple[EscalationLevel, ...]:
        escalation: tuple[EscalationLevel, ...] = self.singletons.get("escalation") or ()
        if "escalation" in self.singletons:
            item = self.singleton_origin["escalation"]
            for index, level in enumerate(escalation):
                path: Path_ = ("escalation", index, "notify")
                self._need(level.notify, self.notifiers, "notifier", item, path)
        return escalation

    def _ruleset(
        self, after: AfterRollback, notify: tuple[str, ...], escalation: tuple[EscalationLevel, ...]
    ) -> RuleSet:
        severities = dict(runbook_severities())
        severities.update(self.singletons.get("severities") or {})
        summaries = {
            p.file: f"{len(p.model.rules)} rules, {len(p.model.signals)} signals, "
            f"{len(p.model.sources)} sources, {len(p.model.targets)} targets"
            for p in self.parsed
        }
        return RuleSet(
            sources=self.sources,
            signals=self.signals,
            targets=self.targets,
            purges=self.purges,
            notifiers=self.notifiers,
            rules=tuple(rule for rule, _, _ in self.rules),
            severities=severities,
            notify=notify,
            after_rollback=after,
            escalation=escalation,
            correlation=self.singletons.get("correlation") or Correlation(),
            guards=self.singletons.get("guards") or Guards(),
            defaults=self.defaults,
            silence=self.singletons.get("silence") or SilencePolicy(),
            files=tuple(p.file for p in self.parsed),
            summaries=summaries,
        )


def _implicit_signal(
    name: str,
    signals: Mapping[str, ResolvedSignal],
    sources: Mapping[str, SourceSpec],
    defaults: Defaults,
) -> ResolvedSignal | None:
    """``health.up`` names field ``up`` of probe source ``health`` without a signals entry."""
    if name in signals:
        return signals[name]
    source_name, _, field_name = name.rpartition(".")
    source = sources.get(source_name)
    if source is None:
        return None
    fields = IMPLICIT_FIELDS.get(source.type, {})
    if field_name not in fields:
        return None
    spec = SignalSpec(source=source_name, field=field_name)
    interval = source.interval if source.interval is not None else defaults.interval
    return ResolvedSignal(name, source_name, source, spec, fields[field_name], interval)
