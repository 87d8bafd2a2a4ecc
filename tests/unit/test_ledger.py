"""The version ledger's pure parts: how each version went live, which ones were rolled
away from (by anyone), and the choice with its reasons."""

from __future__ import annotations

from watchdog.actions.ledger import choose, describe_step_how, rebuild
from watchdog.model import Candidate, Deploy, LiveStep, Observed
from watchdog.store.base import ActionRecord, LedgerEntry

T0 = 1_790_000_000.0


def step(
    dep: str,
    at: float,
    *versions: str,
    message: str = "",
    source: str = "wrangler",
    trigger: str = "upload",
) -> LiveStep:
    return LiveStep(dep, at, versions, describe_step_how(source, trigger, message), message)


def observed(steps: list[LiveStep], live: str, candidates: list[str]) -> Observed:
    return Observed(
        live=Deploy("d-live", live, T0),
        bad=(live,),
        steps=tuple(steps),
        candidates=tuple(Candidate(c, Deploy(f"d-{c}", c, T0)) for c in candidates),
        empty_why="no earlier deployment",
    )


def test_how_a_version_went_live() -> None:
    """A person (wrangler, the dashboard, a Pages direct upload), CI (Workers CI,
    Terraform, a git push), the watchdog (its signed message), a person's rollback
    through the watchdog; anything else is unknown, not guessed."""
    assert describe_step_how("wrangler", "upload", "") == "person"
    assert describe_step_how("dash", "", "") == "person"
    assert describe_step_how("", "ad_hoc", "") == "person"
    assert describe_step_how("workersci", "upload", "") == "ci"
    assert describe_step_how("terraform", "", "") == "ci"
    assert describe_step_how("", "github:push", "") == "ci"
    assert describe_step_how("api", "rollback", "rollback-watchdog: error-rate 8%") == "watchdog"
    assert describe_step_how("api", "rollback", "rollback-watchdog manual: bad") == "person"
    # A ramp's step is the deploy of the person who started the ramp (a bad step is a
    # deploy to blame and roll back), not the watchdog's own rollback.
    assert describe_step_how("api", "", "rollback-watchdog ramp 1a2b: first step") == "person"
    assert describe_step_how("api", "deployment", "") == "unknown"


def test_replaced_by_an_older_version_is_rolled_away_from_a_promotion_is_not() -> None:
    """v2 at 100 %, a gradual v2 90 / v3 10, v3 promoted to 100 % (not a rollback: v3
    is newer), v4, then v3 again (a rollback by hand: v4 is rolled away from)."""
    steps = [
        step("d1", T0, "v2"),
        step("d2", T0 + 10, "v2", "v3"),
        step("d3", T0 + 20, "v3"),
        step("d4", T0 + 30, "v4", source="workersci"),
        step("d5", T0 + 40, "v3", trigger="rollback"),
    ]
    got = rebuild("worker", {}, observed(steps, "v3", ["v4", "v3", "v2"]), [])
    assert {v for v, e in got.items() if e.rolled_away} == {"v4"}
    assert "replaced by older v3 in d5 by a person" in got["v4"].rolled_away_why
    assert got["v4"].how == "ci"
    assert got["v2"].went_live_at == T0
    assert got["v3"].went_live_at == T0 + 10


def test_the_journal_and_a_pages_rollback_mark_versions_rolled_away() -> None:
    """A done rollback in the journal (gradual from: both versions), and a Pages step
    that moved production back past several newer deployments."""
    row = ActionRecord(
        "i/rollback/worker",
        "i",
        "rollback",
        "worker",
        {"from": "v3,v4", "to": "v2"},
        "done",
        T0,
        {},
        T0 + 5,
    )
    got = rebuild("worker", {}, observed([], "v2", []), [row])
    assert {v: e.rolled_away_at for v, e in got.items()} == {"v3": T0 + 5, "v4": T0 + 5}
    pages = [
        step("p1", T0, "p1", trigger="github:push"),
        step("p2", T0 + 10, "p2", trigger="github:push"),
        step("p3", T0 + 20, "p3", trigger="github:push"),
        LiveStep("p1", T0 + 20, ("p1",), "unknown", "rollback", rollback=True, away=("p2", "p3")),
    ]
    got = rebuild("frontend", {}, observed(pages, "p1", []), [])
    assert {v for v, e in got.items() if e.rolled_away} == {"p2", "p3"}


def test_facts_already_known_are_not_rewritten() -> None:
    """A version known rolled away stays so with its first reason; nothing unchanged
    is returned (nothing to write)."""
    known = {
        "v2": LedgerEntry("worker", "v2", T0, "person", "", T0 + 1, "first reason"),
        "v1": LedgerEntry("worker", "v1", T0 - 10, "person"),
    }
    steps = [step("d1", T0 - 10, "v1"), step("d2", T0, "v2"), step("d3", T0 + 20, "v1")]
    assert rebuild("worker", known, observed(steps, "v1", ["v2"]), []) == {}


def test_the_choice_and_its_reasons() -> None:
    """Never the live version, never one rolled away from; a verified one before a
    newer unverified one; a legacy "seen healthy" mark is shown, never preferred."""
    ledger = {
        "v5": LedgerEntry("worker", "v5", T0 + 50),
        "v4": LedgerEntry("worker", "v4", T0 + 40, rolled_away_at=T0 + 45, rolled_away_why="x"),
        "v3": LedgerEntry("worker", "v3", T0 + 30, legacy_seen_at=T0 + 31),
        "v2": LedgerEntry("worker", "v2", T0 + 20, verified_at=T0 + 25, verified_why="passed"),
    }
    state = choose("worker", "k", observed([], "v5", ["v5", "v4", "v3", "v2"]), ledger)
    assert state.rollback_to is not None
    assert state.rollback_to.version == "v2"
    lines = {line.version: (line.status, line.reason) for line in state.ledger}
    assert lines["v5"][0] == "live"
    assert lines["v4"][0] == "skipped"
    assert lines["v3"][0] == "candidate"
    assert "not evidence" in lines["v3"][1]
    assert lines["v2"][0] == "chosen"
    unverified = {k: v for k, v in ledger.items() if k != "v2"}
    state = choose("worker", "k", observed([], "v5", ["v5", "v4", "v3"]), unverified)
    assert state.rollback_to is not None
    assert state.rollback_to.version == "v3"
    assert "none is verified healthy" in state.why
    uncertain = Observed(Deploy("d", "v5", T0), ("v5",), (), (), uncertain="list too long")
    refused = choose("worker", "k", uncertain, ledger)
    assert refused.rollback_to is None
    assert "uncertain" in refused.why
