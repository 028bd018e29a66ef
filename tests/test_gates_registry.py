from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gates.registry import (
    ARCHIVED,
    CANDIDATE,
    PENDING,
    PRODUCTION,
    REJECTED,
    ROLLED_BACK,
    Registry,
    RegistryError,
    derive_registry,
)

T0 = datetime(2026, 4, 20, 3, 0, tzinfo=timezone.utc)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def promo(minute, decision, version, champion=None, slot="credit_pd", operator=None):
    return {"table_name": "model_promotion", "ts": at(minute), "slot": slot, "decision": decision,
            "challenger_version": version, "champion_version": champion, "trigger": "auto",
            "operator": operator, "reason": f"{decision} {version}"}


def registered(minute, version, slot="credit_pd"):
    return {"table_name": "operation", "ts": at(minute).isoformat(), "event_type": "model_registered",
            "component": "registry", "status": "ok", "details": f'{{"slot":"{slot}","version":"{version}"}}'}


STORY = [
    registered(0, "v1"),
    promo(1, "bootstrap", "v1"),
    registered(2, "v2"),
    promo(3, "pending_approval", "v2", "v1"),
    promo(4, "approve", "v2", "v1", operator="mrm-chair"),
    promo(5, "reject", "v3", "v2"),
    promo(6, "promote", "v4", "v2"),
    {"table_name": "operation", "ts": at(7), "event_type": "monitor_alert", "details": {"x": 1}},
    promo(8, "rollback", "v2", "v4", operator="eng-7"),
    promo(9, "force_promote", "v1", "v2", operator="eng-42"),
]


def test_a_whole_story_and_champion_at_every_instant():
    r = derive_registry(STORY)
    assert r.states("credit_pd") == {"v1": PRODUCTION, "v2": ARCHIVED, "v3": REJECTED, "v4": ROLLED_BACK}
    assert [r.champion_at("credit_pd", at(m)) for m in range(10)] == [
        None, "v1", "v1", "v1", "v2", "v2", "v4", "v4", "v2", "v1"]
    assert r.champion_at("credit_pd", at(3) + timedelta(seconds=30)) == "v1"
    assert r.champion_at("credit_pd", T0 - timedelta(days=1)) is None
    assert r.states("credit_pd", at(3)) == {"v1": PRODUCTION, "v2": PENDING}
    assert r.previous_production("credit_pd") == ("v2", "v4")
    h = r.history("credit_pd")
    assert [(t.version, t.from_state, t.to_state) for t in h if t.cause == "rollback"] == [
        ("v4", PRODUCTION, ROLLED_BACK), ("v2", ARCHIVED, PRODUCTION)]
    assert [(t.version, t.from_state, t.to_state) for t in h if t.cause == "force_promote"] == [
        ("v2", PRODUCTION, ARCHIVED), ("v1", ARCHIVED, PRODUCTION)]
    assert h[0].from_state is None and h[0].to_state == CANDIDATE


@pytest.mark.parametrize("events, message", [
    ([promo(0, "bootstrap", "v1"), promo(1, "bootstrap", "v2")], "already has production version v1"),
    ([promo(0, "bootstrap", "v1"), promo(1, "approve", "v2", "v1")], "only a pending_approval version can be approved"),
    ([promo(0, "bootstrap", "v1"), promo(1, "decline", "v2", "v1")], "only a pending_approval version"),
    ([promo(0, "bootstrap", "v1"), promo(1, "promote", "v2", "v1"), promo(2, "rollback", "v3", "v2")],
     "a rollback must go to a version that was production before"),
    ([promo(0, "bootstrap", "v1"), promo(1, "rollback", "v1", "v1")], "was production before, not the current one"),
    ([promo(0, "bootstrap", "v1"), promo(1, "promote", "v2", "v0")], "champion_version is 'v0' but production is 'v1'"),
    ([promo(0, "bootstrap", "v1"), promo(1, "reject", "v1", None)], "the version is production"),
    ([promo(0, "bootstrap", "v1"), promo(1, "force_promote", "v1", "v1")], "already production"),
    ([promo(5, "bootstrap", "v1"), promo(1, "promote", "v2", "v1")], "is before the previous event"),
    ([registered(0, "v1"), registered(1, "v1")], "already registered"),
    ([promo(0, "launch", "v1")], "unknown decision"),
    ([{**promo(0, "bootstrap", "v1"), "ts": "2026-04-20T03:00:00"}], "has no time zone"),
])
def test_invalid_transitions_raise_with_a_clear_message(events, message):
    with pytest.raises(RegistryError, match=message):
        derive_registry(events)


def test_a_rejected_event_changes_nothing():
    r = derive_registry([promo(0, "bootstrap", "v1"), promo(1, "pending_approval", "v2", "v1")])
    before = (r.transitions, r.states("credit_pd"))
    with pytest.raises(RegistryError):
        r.apply(promo(2, "promote", "v2", "v1"))  # v2 is pending: needs approve
    assert (r.transitions, r.states("credit_pd")) == before


def test_slots_are_independent():
    r = derive_registry([promo(0, "bootstrap", "a1", slot="a"), promo(1, "bootstrap", "b1", slot="b"),
                         promo(2, "promote", "a2", "a1", slot="a")])
    assert (r.production("a"), r.production("b")) == ("a2", "b1")
    assert r.slots() == ("a", "b")


# --- property: random event streams -------------------------------------------------------

DECISIONS = ["bootstrap", "promote", "pending_approval", "reject", "approve", "decline", "force_promote", "rollback",
             "model_registered"]


@st.composite
def streams(draw):
    n = draw(st.integers(1, 40))
    out = []
    for i in range(n):
        kind = draw(st.sampled_from(DECISIONS))
        slot = draw(st.sampled_from(["s1", "s2"]))
        version = draw(st.sampled_from(["v1", "v2", "v3", "v4"]))
        champion = draw(st.sampled_from([None, "v1", "v2", "v3", "v4"]))
        gap = draw(st.integers(0, 2))  # 0: several events at one instant
        out.append((kind, slot, version, champion, gap))
    return out


@settings(max_examples=300, deadline=None)
@given(streams())
def test_random_streams_never_have_two_production_versions(stream):
    r = Registry()
    minute = 0
    accepted: list[dict] = []
    for kind, slot, version, champion, gap in stream:
        minute += gap
        event = registered(minute, version, slot) if kind == "model_registered" else \
            promo(minute, kind, version, champion, slot, operator="op")
        try:
            r.apply(event)
            accepted.append(event)
        except RegistryError:
            pass
    # Deriving from the accepted events alone gives the same history.
    def shape(reg):
        return [(t.ts, t.slot, t.version, t.from_state, t.to_state, t.cause) for t in reg.transitions]

    assert shape(derive_registry(accepted)) == shape(r)
    for slot in ("s1", "s2"):
        # At every instant, at most one production version, and champion_at agrees with a
        # replay of the history up to that instant.
        live: dict[str, str] = {}
        for t in r.history(slot):
            live[t.version] = t.to_state
            assert sum(1 for s in live.values() if s == PRODUCTION) <= 1
        for m in range(minute + 2):
            states = {}
            for t in r.history(slot):
                if t.ts <= at(m):
                    states[t.version] = t.to_state
            prod = [v for v, s in states.items() if s == PRODUCTION]
            assert len(prod) <= 1
            assert r.champion_at(slot, at(m)) == (prod[0] if prod else None)
        # Only a production version is archived or rolled back; a rollback restores a version
        # that was production before; an approval promotes only a pending version.
        for t in r.history(slot):
            if t.to_state in (ARCHIVED, ROLLED_BACK):
                assert t.from_state == PRODUCTION
            if t.cause == "rollback" and t.to_state == PRODUCTION:
                earlier = [u for u in r.history(slot) if u.index < t.index and u.version == t.version]
                assert any(u.to_state == PRODUCTION for u in earlier)
            if t.cause == "approve" and t.to_state == PRODUCTION:
                assert t.from_state == PENDING
