"""The demo scenario: a year of a retail bank's investment-product recommender, through the ledger.

``run_demo(out, requests, seed)`` replays 52 weeks (6 Jan 2025 - 4 Jan 2026, Korea time) and
writes everything an examiner would find at such a bank into ``out``:

- every recommendation request (data access -> inference -> attribution -> suitability
  guardrail, ``mrm.demo.serving``), served by whatever version the ledger says is production;
- every Monday at 03:00 a retrained challenger (real scikit-learn models, ``mrm.demo.models``),
  evaluated on the frozen holdout and put through the promotion gate (``gates.promotion``);
- late-arriving outcomes every morning (``gates.observations``), a segment fairness monitor
  every Tuesday at 14:00 (``mrm.demo.fairness``, recorded with ``gates.monitoring``), the
  duty engineer's emergency force-promote when it finds a disparate-impact breach, the MRM
  committee on Fridays (override review, the switch to human sign-off, approvals), the
  semi-annual HMAC key rotation, and a signed checkpoint every Sunday night.

Nothing of the story is scripted but the models trained each week (``models.weekly_plan``) and
the rules the people follow; which challenger is promoted, rejected or left pending, when the
monitor fires and what the engineer restores all come out of the gate and the monitors. With
the default seed and request count that gives the story of ``models.STORY_WEEKS``; another
seed, or more traffic (the monitor then sees the breach a week earlier), tells a variant.

Determinism: the same seed (and request count) gives the same ledger content. Entry times
follow the simulated calendar (the ledger's clock is ``clock.SimulatedClock``), actors are
fixed, run ids are named after the calendar, and artifacts are written deterministically. What
differs between two runs is what must: the random ledger id and the random key material, and so
each entry's ``mac``, the genesis entry's ``ledger_id`` and ``key_check``, and the key
rotation's ``new_key_check`` (see ``ledger_content``). The key *ids* are fixed names. Keys are
generated at random rather than derived from the seed on purpose: a demo that derived keys from
a public seed would show people the one thing never to do with evidence keys.
"""

from __future__ import annotations

import datetime as dt
import gzip
import heapq
import itertools
import json
import secrets
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from forensics.attestation import HmacChainVerifier, SignedCheckpointVerifier
from gates.decision import APPROVE, BOOTSTRAP, FORCE_PROMOTE, PENDING, PROMOTE, REJECT, ROLLBACK
from gates.evaluation import Evaluation, evaluation_to_dict, observe_artifacts
from gates.ledger_io import load_registry
from gates.manifest import serving_manifest, write_manifest
from gates.alerts import PROPOSE_RETRAIN
from gates.monitoring import (
    OnlineReport,
    act_on_serving,
    compute_online,
    compute_serving,
    drift_report,
    propose_retrain,
    record_monitor_report,
    record_online,
)
from gates.observations import LATENCY, Window, record_outcomes
from gates.online import WORSE, TrafficMode, route
from gates.policy import Policy, load_policy, policy_digest
from gates.promotion import Recorded, approve, decline, force_promote, review_override, run_gate, set_traffic
from ledger import Keyring, Ledger
from ledger.keys import load_verifiers
from ledger.proofs import find_request, prove_entries, verify_proof, write_proof
from ledger.read import read_tables

from .clock import SimulatedClock, kst, kst_text, to_datetime
from .fairness import compute_segment_fairness, holdout_segment_breaches, subjects_table, window_ending
from .forensics import Forensics, run_forensic_queries
from .gate_evaluation import GateHoldout, gate_evaluation, training_code_digest, write_model_artifacts
from .models import PlanItem, RecommenderModel, evaluate, train_model, weekly_plan
from .serving import (
    CHALLENGER_ROUTE,
    ROUTE,
    ServedBatch,
    ServingDraws,
    append_requests,
    serve,
    serving_draws,
    shadow_inferences,
)
from .world import (
    HOLDOUT_DATASET,
    KST,
    OUTCOMES_DATASET,
    PRODUCT_IDS,
    START_DATE,
    YEAR_DAYS,
    Customers,
    Holdout,
    RequestBatch,
    World,
    WorldConfig,
    day_start_us,
    keyed_rng,
)

SLOT = "retail_invest_reco"
DEFAULT_REQUESTS = 50_000
DEFAULT_SEED = WorldConfig().seed
WEEKS = YEAR_DAYS // 7
YEAR_SECONDS = 365 * 86_400.0
# The gate compares models on 6,000 frozen-holdout customers per epoch: DeLong has ample power
# for the effects that matter, and each evaluation file stays small enough to keep.
HOLDOUT_SIZE = 6_000
POLICY_FILE = Path(__file__).with_name("policy.toml")

# Decisions after which the challenger version serves.
MAKES_PRODUCTION = (BOOTSTRAP, PROMOTE, APPROVE, FORCE_PROMOTE, ROLLBACK)

# Who writes what (the ledger's actor column) and the people named in entries.
PIPELINE_ACTOR = "reco-pipeline"  # the weekly retrain, validation and gate job
MONITOR_ACTOR = "fairness-monitor"
DRIFT_ACTOR = "drift-monitor"
SERVING_MONITOR_ACTOR = "serving-monitor"
ML_OPS = "mlops.yoon.seojin"  # runs online trials (traffic splits)
OUTCOMES_ACTOR = "outcomes-etl"
RETRAIN_OPERATOR = "svc:reco-retrain"
VALIDATION_OPERATOR = "svc:reco-validation"
DUTY_ENGINEER = "eng.choi.minjun"
COMMITTEE_CHAIR = "mrm.park.seoyeon"
KEY_CUSTODIAN = "sec.kang.haneul"
ALL_SUBJECTS = "*"  # subject_id of a bulk read; row_count says how many rows

# Key ids are names, not secrets: fixed, so the key_id column is the same in every run.
FIRST_KEY_ID = "demo-2025h1"  # also names the checkpoint signer, mrm-demo-2025h1
SECOND_KEY_ID = "demo-2025h2"
KEY_ROTATION_DAY = (dt.date(2025, 7, 1) - START_DATE).days  # semi-annual rotation, 00:00 KST

# The bank's week (days after Monday) and times of day, KST.
MONDAY, TUESDAY, FRIDAY, SUNDAY = 0, 1, 4, 6
LEDGER_CREATED = (-1, 9, 0)  # Sunday before launch, 09:00
SCHEMA_CHANGE_AT = (2, 50)
RETRAIN_AT = (3, 0)
OUTCOMES_AT = (6, 0)
MONITOR_AT = (14, 0)
COMMITTEE_AT = (10, 0)
EMERGENCY_RESPONSE_MINUTES = 20
DRIFT_AT = (1, 0)

# The nightly drift run: PSI of the last week's requests against the four weeks before, on the
# requests' input features (from the bank's feature store) and the live version's scores. Each
# window is a bounded sample (at most DRIFT_SAMPLE requests, drawn evenly over its days), so a
# night costs the same at 50,000 or millions of requests a year.
DRIFT_CURRENT_DAYS, DRIFT_REFERENCE_DAYS = 7, 28
DRIFT_SAMPLE = 1_000
DRIFT_INPUTS = ("age", "assets_krw", "invest_experience_years", "risk_tolerance", "debt_ratio")

# The online trial of a challenger waiting for the committee's sign-off (Monday's gate): shadow
# at once, a canary share from Wednesday, Welch's test of the canary on Friday before the
# committee meets.
SHADOW_AT = (3, 10)
CANARY_AT, CANARY_AFTER_DAYS, CANARY_MODE = (3, 0), 2, TrafficMode.CANARY_20
ONLINE_TEST_AT, ONLINE_TEST_AFTER_DAYS = (9, 0), 4
ONLINE_METRICS = (LATENCY,)

# Serving health of a version newly in production: checked at these times during its first day
# (from an hour after the swap); a trigger of the policy's [rollback] rolls it back at once.
SERVING_CHECKS = ((12, 0), (18, 0))
SERVING_WATCH_HOURS = 24
MICROS_PER_HOUR = 3_600_000_000


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoryEvent:
    """One notable event of the year, with the ledger entry that records it."""

    week: int
    when: str  # KST, as the bank's people write it
    event: str
    seq: int
    detail: str
    headline: bool = True  # part of the short story (the first of a kind of rejection, not every one)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DemoPaths:
    out: Path
    ledger: Path
    keyring: Path  # secret: the HMAC keys and the checkpoint signing key
    public_key: Path  # vkey lines: verifies checkpoints and proofs
    public_state: Path  # what public verification last saw (for `mrm verify --state`)
    proof: Path  # inclusion proof of the disputed request's entries
    reconstruction: Path  # the disputed recommendation, reconstructed (JSON; .txt beside it for people)
    manifest: Path  # the serving manifest derived from the ledger
    subjects: Path  # the bank's customer attributes for fairness monitoring (Parquet)
    policy: Path  # the promotion policy the year started with
    models: Path  # model artifacts, models/<version>/
    evaluations: Path  # gate evaluations, evaluations/<version>@epoch<e>.json.gz
    result: Path  # this result as JSON

    @classmethod
    def under(cls, out: Path) -> "DemoPaths":
        return cls(out, out / "ledger", out / "ledger.keyring.json", out / "ledger.pub", out / "ledger.public-state",
                   out / "proofs", out / "disputed-request.json", out / "serving-manifest.json",
                   out / "subjects.parquet", out / "policy.toml", out / "models", out / "evaluations",
                   out / "demo-result.json")


@dataclass(frozen=True)
class DemoResult:
    """What ``run_demo`` made and the notable events, for tests, benchmarks and reports."""

    paths: DemoPaths
    seed: int
    requests: int  # requests served (fewer than asked when ``weeks`` < 52)
    weeks: int
    entries: int
    entries_by_table: dict[str, int]
    story: tuple[StoryEvent, ...]
    disputed_request_id: str
    proof_path: Path
    bootstrap_version: str | None
    promoted_versions: tuple[str, ...]  # by the gate (promote) or a human (approve)
    fidelity_rejected_version: str | None  # rejected at the fidelity floor with a higher mean AUC
    fidelity_reject_seq: int | None
    fidelity_reject_evaluations: tuple[Path, ...]  # challenger's and champion's, to replay that decision
    pending_version: str | None  # first version left pending a human sign-off
    approved_version: str | None
    approver: str | None
    declined_versions: tuple[str, ...]
    force_promoted_version: str | None
    force_promote_operator: str | None
    force_promote_seq: int | None
    fairness_alert_seq: int | None  # the alert the force-promote answered
    schema_change_seq: int | None
    rotation_seq: int | None
    policy_change_seq: int | None
    outcomes_recorded: int
    outcomes_outstanding: int  # labels that had not arrived by the end of the year
    hmac_verified: bool
    public_verified: bool
    proof_verified: bool
    unsuitable_served: int
    seconds: dict[str, float]
    # the monitors' evidence: nightly drift, the online trial, the serving incident
    drift_runs: int = 0
    drift_alert_seq: int | None = None  # first alert of the breach that proposed a retrain
    retrain_proposal_seq: int | None = None
    retrain_answered_seq: int | None = None  # the retrain_start that answered it
    trial_version: str | None = None  # first challenger trialled online
    trial_seqs: tuple[int, ...] = ()  # its shadow and canary traffic_split entries
    online_evaluation_seq: int | None = None
    rollback_seq: int | None = None  # the automatic rollback after a serving trigger
    rollback_alert_seq: int | None = None
    rolled_back_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("paths", "story")}
        d["paths"] = {k: str(v) for k, v in asdict(self.paths).items()}
        d["story"] = [e.to_dict() for e in self.story]
        return json.loads(json.dumps(d, default=str))


# --- the run ----------------------------------------------------------------------------------


# A scheduled event runs at its instant and may schedule a follow-up later that day
# (the monitor's alert -> the engineer's response): (instant, what to run).
FollowUp = tuple[int, Callable[[], None]]
Event = Callable[[], "FollowUp | None"]


@dataclass(frozen=True, eq=False)
class _DueOutcomes:
    """Outcomes that will arrive on one day, for some of one batch's requests (arrays, not
    dicts: a million requests wait up to two weeks for theirs)."""

    request_index: np.ndarray
    label: np.ndarray  # product index the customer took
    accepted: np.ndarray  # the served product was the one taken

    def __len__(self) -> int:
        return len(self.request_index)

    def rows(self) -> Iterator[tuple[str, int, bool]]:
        ids = RequestBatch.request_ids_of(self.request_index)
        return zip(ids, self.label.tolist(), self.accepted.tolist())


@contextmanager
def acting_as(ledger: Ledger, actor: str) -> Iterator[None]:
    """Write as ``actor``. The demo runs every component in one process through one ledger
    handle; in production each one opens its own ``Ledger`` with its own actor."""
    previous, ledger.actor = ledger.actor, actor
    try:
        yield
    finally:
        ledger.actor = previous


def _prepare_out(out: Path) -> None:
    """``out`` is created, or replaced if it holds an earlier demo; anything else is refused
    (a mistyped ``--out`` must never delete someone's files)."""
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"{out} exists and is not a directory")
        if any(out.iterdir()) and not (DemoPaths.under(out).result.exists() or (out / "ledger" / "LEDGER.json").exists()):
            raise FileExistsError(f"{out} is not empty and does not hold an earlier demo; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)


class _Year:
    """The simulation's state while the year is replayed: one instance per ``run_demo``."""

    def __init__(self, paths: DemoPaths, requests: int, seed: int, weeks: int):
        self.paths = paths
        self.n_requests = requests
        self.weeks = weeks
        self.world = World(WorldConfig(seed=seed, holdout_size=HOLDOUT_SIZE))
        self.clock = SimulatedClock(kst(*LEDGER_CREATED))
        self.policy: Policy = load_policy(POLICY_FILE)
        self.code_digest = training_code_digest()
        self.plan = {item.week: item for item in weekly_plan(self.world.config, weeks)}
        self.models: dict[str, RecommenderModel] = {}
        self.artifacts: dict[str, tuple] = {}
        self.evaluations: dict[tuple[str, int], Evaluation] = {}
        self.evaluation_files: dict[str, Path] = {}  # evaluation digest -> its file
        self.holdouts: dict[int, tuple[Holdout, GateHoldout]] = {}
        self._subjects_table: pa.Table | None = None
        self.production: str | None = None
        self.pending: list[Recorded] = []
        self.unreviewed_overrides: list[tuple[Recorded, int]] = []  # (force-promote, alert seq)
        self.outcomes_due: dict[int, list[_DueOutcomes]] = {}  # arrival day -> what arrives then
        self.story: list[StoryEvent] = []
        self.facts: dict[str, Any] = {"promoted": [], "declined": []}
        self.served_requests = 0
        self.outcomes_recorded = 0
        self.full_load_latency = {item.spec.version: item.full_load_latency_factor for item in self.plan.values()}
        self.drift_samples: dict[int, Customers] = {}  # day -> bounded sample of its requests
        self.drift_runs = 0
        self.drift_breaching = False
        self.open_proposal: int | None = None
        self.trial: dict[str, Any] | None = None  # the manifest's challenger (version, mode, experiment)
        self.trials: dict[str, dict[str, Any]] = {}  # version -> its traffic seqs and online evaluation
        self.live_since: dt.datetime | None = None
        self.scheduled: dict[int, list[tuple[int, Event]]] = {}  # day -> (instant, event) set by earlier events
        self._queue: list[tuple[int, int, Event]] = []
        self._order = itertools.count()
        self._today = -1
        self.keyring = Keyring.generate(FIRST_KEY_ID)
        self.keyring.save(paths.keyring)
        # Sealing follows the simulated calendar (every Sunday night), so the wall-clock seal
        # timer is set out of reach.
        self.ledger = Ledger.create(paths.ledger, self.keyring, actor=PIPELINE_ACTOR, clock=self.clock,
                                    checkpoint_interval=YEAR_SECONDS)
        self._note(-1, "ledger created", self._last_seq(), f"ledger {self.ledger.ledger_id}, HMAC key {FIRST_KEY_ID}",
                   headline=False)

    # -- small helpers --------------------------------------------------------------------------

    def _last_seq(self) -> int:
        self.ledger.flush()
        return self.ledger.head.seq

    def _note(self, week: int, event: str, seq: int, detail: str, headline: bool = True) -> None:
        self.story.append(StoryEvent(week, kst_text(self.clock()), event, seq, detail, headline))

    def _at(self, day: int, hour: int, minute: int = 0, second: int = 0) -> None:
        self.clock.set(kst(day, hour, minute, second))

    def _schedule(self, at: int, event: Event) -> None:
        """Run ``event`` at instant ``at`` (later today or on a later day)."""
        day = (at - day_start_us(0)) // (86_400 * 1_000_000)
        if day == self._today:
            heapq.heappush(self._queue, (at, next(self._order), event))
        else:
            self.scheduled.setdefault(day, []).append((at, event))

    def _holdout(self, epoch: int) -> tuple[Holdout, GateHoldout]:
        if epoch not in self.holdouts:
            h = self.world.holdout(epoch)
            self.holdouts[epoch] = (h, GateHoldout.of(h))
        return self.holdouts[epoch]

    # -- the calendar -------------------------------------------------------------------------

    def run(self) -> None:
        """Day by day, the requests streamed one day at a time (memory stays bounded by a day
        of requests and the outcomes still to arrive, whatever ``--requests`` is)."""
        requests = self.world.iter_requests(self.n_requests)
        upcoming = next(requests, None)
        for day in range(7 * self.weeks):
            batch = None
            if upcoming is not None and int(upcoming.day[0]) == day:
                batch, upcoming = upcoming, next(requests, None)
            self._run_day(day, batch)
        self.ledger.close()

    def _events(self, day: int) -> list[tuple[int, int, Event]]:
        weekday, week = day % 7, day // 7
        events: list[tuple[int, Event]] = list(self.scheduled.pop(day, []))
        if day >= DRIFT_CURRENT_DAYS + 7:  # a week of reference at least
            events.append((kst(day, *DRIFT_AT), lambda: self.nightly_drift(day)))
        if day == KEY_ROTATION_DAY:
            events.append((kst(day, 0, 0), lambda: self.rotate_key(week)))
        if weekday == MONDAY and self.plan[week].schema_change is not None:
            events.append((kst(day, *SCHEMA_CHANGE_AT), lambda: self.change_feature_schema(self.plan[week])))
        if weekday == MONDAY:
            events.append((kst(day, *RETRAIN_AT), lambda: self.retrain_and_gate(self.plan[week])))
        if self.outcomes_due.get(day):
            events.append((kst(day, *OUTCOMES_AT), lambda: self.record_outcomes(day)))
        if weekday == TUESDAY:
            events.append((kst(day, *MONITOR_AT), lambda: self.fairness_monitor(day)))
        if weekday == FRIDAY:
            events.append((kst(day, *COMMITTEE_AT), lambda: self.committee(day)))
        if weekday == SUNDAY:
            events.append((kst(day, 23, 59, 59), lambda: self.checkpoint()))
        return [(at, i, fn) for i, (at, fn) in enumerate(events)]

    def _run_day(self, day: int, batch: RequestBatch | None) -> None:
        """Serve the day's requests in time order, stopping at each event to run it, so that
        a promotion at 14:20 changes who serves the 14:21 request."""
        self._today = day
        self._queue = queue = self._events(day)
        heapq.heapify(queue)
        self._order = order = itertools.count(len(queue))
        draws = serving_draws(self.world.seed, day, batch) if batch is not None else None
        if batch is not None:
            self._keep_drift_sample(day, batch)
        start = 0
        while queue:
            at, _, run_event = heapq.heappop(queue)
            if batch is not None:
                end = int(np.searchsorted(batch.ts_us, at, side="left"))
                self._serve(batch.take(slice(start, end)), draws.take(slice(start, end)))
                start = end
            self.clock.set(at)
            follow_up = run_event()
            if follow_up is not None:  # an event may schedule another later that day
                heapq.heappush(queue, (follow_up[0], next(order), follow_up[1]))
        if batch is not None:
            self._serve(batch.take(slice(start, None)), draws.take(slice(start, None)))

    # -- serving ------------------------------------------------------------------------------

    def _serve(self, requests: RequestBatch, draws: ServingDraws) -> None:
        """Serve as the manifest says: production on the champion route, and during an online
        trial the challenger in shadow (scoring every request, serving none) or on its canary
        share (routed by request id, :func:`gates.online.route`)."""
        if len(requests) == 0:
            return
        if self.production is None:
            raise RuntimeError("requests arrived before any version was in production")
        trial = self.trial
        mode = TrafficMode(trial["mode"]) if trial is not None else None
        to_challenger = np.zeros(len(requests), dtype=bool)
        if mode is not None and mode is not TrafficMode.SHADOW:
            to_challenger = np.array([route(r, mode, trial["experiment"]).served == "challenger"
                                      for r in requests.request_ids()], dtype=bool)
        # production carries the full load, where a version's latency regression shows
        arms = [(~to_challenger, self.production, ROUTE, self.full_load_latency.get(self.production, 1.0))]
        if to_challenger.any():
            arms.append((to_challenger, trial["challenger_version"], CHALLENGER_ROUTE, 1.0))
        for mask, version, served_route, slowdown in arms:
            idx = np.flatnonzero(mask)
            if len(idx) == 0:
                continue
            served = serve(self.models[version], requests.take(idx), draws.take(idx).slowed(slowdown))
            append_requests(self.ledger, served, SLOT, served_route)
            self.served_requests += len(served)
            self._expect_outcomes(served)
        if mode is TrafficMode.SHADOW:
            self.ledger.append("model_inference",
                               shadow_inferences(self.models[trial["challenger_version"]], requests, draws, SLOT))

    def _expect_outcomes(self, served: ServedBatch) -> None:
        """Remember when each request's outcome will arrive: 1-2 days for deposits, after the
        7-day cooling-off for investment products (``World.sample_label_delay``)."""
        rb = served.requests
        accepted = served.served_product == rb.label
        for arrival in np.unique(rb.label_arrival_day).tolist():
            at = np.flatnonzero(rb.label_arrival_day == arrival)
            self.outcomes_due.setdefault(arrival, []).append(_DueOutcomes(rb.index[at], rb.label[at], accepted[at]))

    def _refresh_production(self, cause: Recorded) -> None:
        """Serving reads what to serve from the manifest derived from the ledger; a change is
        applied (and recorded as a manifest_swap) right after the entry that caused it."""
        if cause.decision.outcome not in MAKES_PRODUCTION:
            return
        manifest = serving_manifest(self.paths.ledger)["slots"].get(SLOT, {})
        live = manifest.get("production")
        if live == self.production:
            return
        self.clock.set(self.clock() + 60_000_000)  # the serving fleet reloads within a minute
        with acting_as(self.ledger, "reco-serving"):
            self.ledger.log_operation(
                event_type="manifest_swap", component="reco-serving", status="applied", correlation_id=f"{SLOT}/{live}",
                details={"slot": SLOT, "from_version": self.production, "to_version": live,
                         "promotion_seq": manifest["seq"]}, durable=True)
        self.production = live
        self.trial = manifest.get("challenger")  # a decided challenger takes no more traffic
        self._watch_serving(live)

    def _refresh_traffic(self) -> None:
        """Serving reads the challenger's traffic from the manifest too."""
        self.trial = serving_manifest(self.paths.ledger)["slots"].get(SLOT, {}).get("challenger")

    # -- serving health of a version newly in production ----------------------------------------

    def _watch_serving(self, version: str) -> None:
        swapped = self.clock()
        self.live_since = to_datetime(swapped)
        today = (swapped - day_start_us(0)) // (86_400 * 1_000_000)
        for day in (today, today + 1):
            for at in (kst(day, *t) for t in SERVING_CHECKS):
                if swapped + MICROS_PER_HOUR <= at < swapped + SERVING_WATCH_HOURS * MICROS_PER_HOUR:
                    self._schedule(at, lambda: self.serving_check(version))

    def serving_check(self, version: str) -> None:
        """The policy's rollback triggers on the live version since it took production; the
        check itself writes nothing unless a trigger fires (``act_on_serving``: the alert, and
        with ``rollback.action = "rollback"`` the rollback through the registry)."""
        if self.production != version or self.live_since is None:
            return
        self.ledger.flush()
        now = to_datetime(self.clock())
        report = compute_serving(self.paths.ledger, SLOT, self.policy, window=Window(self.live_since, now))
        if report.alert is None:
            return
        week = (self.clock() - day_start_us(0)) // (7 * 86_400 * 1_000_000)
        with acting_as(self.ledger, SERVING_MONITOR_ACTOR):
            action = act_on_serving(self.ledger, report, run_id=f"serving/{version}/{kst_text(self.clock())}")
        self._note(week, "serving alert", action.alert_seq, report.alert.summary)
        if action.rollback is None:
            return
        d = action.rollback.decision
        self.facts.setdefault("rollback", (action.rollback.seq, action.alert_seq, version))
        self._note(week, "rollback (automatic)", action.rollback.seq,
                   f"{d.champion_version} -> {d.challenger_version}, triggered by the serving alert at seq {action.alert_seq}")
        self._refresh_production(action.rollback)

    # -- every night: drift of the requests' inputs and scores ---------------------------------

    def _keep_drift_sample(self, day: int, batch: RequestBatch) -> None:
        """A bounded sample of the day's requests for the drift runs; days out of reach dropped."""
        per_day = DRIFT_SAMPLE // DRIFT_CURRENT_DAYS + 1
        rng = keyed_rng(self.world.seed, "drift-sample", day)
        idx = np.sort(rng.choice(len(batch), size=min(per_day, len(batch)), replace=False))
        self.drift_samples[day] = batch.customers.take(idx)
        for old in [d for d in self.drift_samples if d < day - DRIFT_CURRENT_DAYS - DRIFT_REFERENCE_DAYS]:
            del self.drift_samples[old]

    def _drift_values(self, days: range) -> tuple[dict[str, np.ndarray], int]:
        parts = [self.drift_samples[d] for d in days if d in self.drift_samples]
        customers = Customers.concat(parts)
        if len(customers) > DRIFT_SAMPLE:
            customers = customers.take(np.unique(np.linspace(0, len(customers) - 1, DRIFT_SAMPLE).round().astype(int)))
        values = {f"input:{f}": getattr(customers, f).astype(np.float64) for f in DRIFT_INPUTS}
        proba = self.models[self.production].predict_proba(customers)
        values.update({f"score:{p}": proba[:, i] for i, p in enumerate(PRODUCT_IDS)})
        return values, len(customers)

    def nightly_drift(self, day: int) -> None:
        """01:00: PSI of the last week's requests against the four weeks before, on inputs and
        on the live version's scores (both windows scored by it, so a promotion is not drift).
        A feature past the act line proposes a retrain, once per breach; nothing is deployed."""
        current = range(day - DRIFT_CURRENT_DAYS, day)
        reference = range(day - DRIFT_CURRENT_DAYS - DRIFT_REFERENCE_DAYS, day - DRIFT_CURRENT_DAYS)
        if sum(d in self.drift_samples for d in reference) < 7 or not any(d in self.drift_samples for d in current):
            return
        base, n_base = self._drift_values(reference)
        cur, n_cur = self._drift_values(current)
        window = Window(to_datetime(day_start_us(current.start)), to_datetime(day_start_us(current.stop)))
        baseline = Window(to_datetime(day_start_us(max(reference.start, 0))), window.since)
        inputs = {"baseline": baseline.to_dict(), "features": list(base), "baseline_requests": n_base,
                  "current_requests": n_cur, "sample": f"at most {DRIFT_SAMPLE} requests per window, evenly over its days",
                  "inputs_from": "feature store (the requests' profile values)",
                  "scores_from": f"{self.production} on the sampled requests of both windows"}
        report = drift_report(SLOT, self.production, self.policy, base, cur, window=window, inputs=inputs)
        date = to_datetime(day_start_us(day)).astimezone(KST).date().isoformat()
        with acting_as(self.ledger, DRIFT_ACTOR):
            run = record_monitor_report(self.ledger, report, run_id=f"drift/{date}")
            self.drift_runs += 1
            asking = [(seq, a) for seq, a in zip(run.alert_seqs, report.alerts) if a.action == PROPOSE_RETRAIN]
            if asking and not self.drift_breaching:
                proposal = propose_retrain(self.ledger, report, run)
                worst = max((a for _, a in asking), key=lambda a: a.measurements["psi"])
                self._note(day // 7, "drift alert", asking[0][0],
                           f"{len(asking)} feature(s) past PSI {self.policy.monitors.psi_act:g}, worst "
                           f"{worst.measurements['feature']} PSI {worst.measurements['psi']:.2f} (run seq {run.run_seq})")
                self._note(day // 7, "retrain proposed", proposal,
                           "the next retrain answers it and its challenger goes through the gate; nothing deployed")
                self.facts.setdefault("drift", (asking[0][0], proposal))
                self.open_proposal = proposal
        self.drift_breaching = bool(asking)

    # -- Monday 03:00: retrain, evaluate, gate -------------------------------------------------

    def change_feature_schema(self, item: PlanItem) -> None:
        """The feature pipeline switches schema before the week's retrain uses it."""
        change = item.schema_change
        assert change is not None
        seq = self.ledger.log_dimension_change(
            component="reco-feature-pipeline", reason=(
                f"feature pipeline {item.spec.schema} for models trained from week {item.week}: adds debt ratio, "
                "product knowledge and one-hot age band and region indicators (with senior x region), so the "
                "model sees what the suitability rule sees; investment experience enters as log1p"),
            details={"feature_schema": item.spec.schema, "change_ticket": f"CHG-2025-{item.week:02d}01"},
            **change)
        self._note(item.week, "feature-schema change", seq,
                   f"{change['old_dimension']} -> {change['new_dimension']} features ({item.spec.schema})")
        self.facts["schema_change_seq"] = seq

    def retrain_and_gate(self, item: PlanItem) -> None:
        """Monday 03:00: train the week's challenger on the outcomes that have arrived, write
        its artifacts, evaluate it (and the champion, on a new holdout epoch) on the frozen
        holdout, and put it through the gate under the policy in force. The entries: retrain
        start, the training read, retrain end (artifact digests), the holdout read, the
        evaluations, then the gate's model_registered and model_promotion."""
        day, week, spec = item.day, item.week, item.spec
        answers = {"retrain_proposal_seq": self.open_proposal} if self.open_proposal is not None else {}
        seq = self.ledger.log_operation(event_type="retrain_start", component="reco-retrain", status="started",
                                        correlation_id=f"{SLOT}/{spec.version}",
                                        details={"slot": SLOT, "version": spec.version,
                                                 "schedule": "weekly, Monday 03:00 KST", "feature_schema": spec.schema,
                                                 "note": spec.note, **answers})
        if answers:
            self.facts.setdefault("retrain_answered_seq", seq)
            self.open_proposal = None
        model = train_model(self.world, spec)
        self.models[model.version] = model
        card = model.card()
        self.ledger.log_data_access(
            operator=RETRAIN_OPERATOR, subject_id=ALL_SUBJECTS, dataset=OUTCOMES_DATASET,
            columns=card["training_columns"], purpose=f"weekly retraining of {SLOT} ({model.version})",
            access_type="read", row_count=model.n_train,
            details={"event_days": card["training_event_days"], "label_lag_days": spec.lag_days})
        self.artifacts[model.version] = write_model_artifacts(model, self.paths.out)
        self._at(day, 3, 4)
        self.ledger.log_operation(event_type="retrain_end", component="reco-retrain", status="completed",
                                  correlation_id=f"{SLOT}/{model.version}",
                                  details={"slot": SLOT, "version": model.version, "n_train": model.n_train,
                                           "label_counts": card["label_counts"],
                                           "artifacts": [{"path": a.path, "sha256": a.sha256}
                                                         for a in self.artifacts[model.version]]})
        self._at(day, 3, 6)
        holdout, gate_holdout = self._holdout(item.holdout_epoch)
        self.ledger.log_data_access(
            operator=VALIDATION_OPERATOR, subject_id=ALL_SUBJECTS, dataset=HOLDOUT_DATASET,
            columns=["subject_id", "accepted_product", *model.schema.source_columns],
            purpose=f"promotion gate evaluation of {model.version} on frozen holdout epoch {item.holdout_epoch}",
            access_type="read", row_count=len(holdout), details={"holdout_digest": gate_holdout.digest})
        challenger = self._evaluation(model.version, item.holdout_epoch)
        champion = self._evaluation(self.production, item.holdout_epoch) if self.production else None
        self._at(day, 3, 8)
        recorded = run_gate(self.ledger, challenger, self.policy, champion=champion,
                            observed_artifacts=observe_artifacts(challenger, self.paths.out), inline_evaluations=False)
        self._after_gate(week, recorded, challenger, champion)
        if recorded.decision.outcome == PENDING:
            self._start_trial(day, recorded)

    def _evaluation(self, version: str, epoch: int) -> Evaluation:
        """The gate's evaluation of ``version`` on holdout ``epoch``: computed once, written to
        ``evaluations/`` (the gate records it by digest) and announced in the ledger."""
        key = (version, epoch)
        if key in self.evaluations:
            return self.evaluations[key]
        holdout, gate_holdout = self._holdout(epoch)
        model = self.models[version]
        scored = evaluate(model, holdout)
        e = gate_evaluation(self.world, model, gate_holdout, scored, slot=SLOT, artifacts=self.artifacts[version],
                            code_digest=self.code_digest)
        path = self.paths.evaluations / f"{version}@epoch{epoch}.json.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        # mtime=0: the same evaluation gives the same bytes, run after run
        path.write_bytes(gzip.compress(json.dumps(evaluation_to_dict(e)).encode("utf-8"), compresslevel=1, mtime=0))
        mean_auc = _mean_auc(e)
        self.ledger.log_operation(
            event_type="model_evaluated", component="reco-validation", status="recorded",
            correlation_id=f"{SLOT}/{version}",
            details={"slot": SLOT, "version": version, "holdout_epoch": epoch, "holdout_digest": e.holdout_digest,
                     "evaluation_digest": e.digest, "evaluation_file": str(path.relative_to(self.paths.out)),
                     "mean_auc": mean_auc, "metrics": {t: dict(m) for t, m in e.metrics.items()},
                     "fidelity_kl": {t: f["kl"] for t, f in e.fidelity.items()}})
        self.evaluations[key] = e
        self.evaluation_files[e.digest] = path
        return e

    def _after_gate(self, week: int, recorded: Recorded, challenger: Evaluation, champion: Evaluation | None) -> None:
        d = recorded.decision
        if d.outcome == BOOTSTRAP:
            self.facts["bootstrap_version"] = d.challenger_version
            self._note(week, "bootstrap", recorded.seq, f"{d.challenger_version} becomes the first champion")
        elif d.outcome == PROMOTE:
            self.facts["promoted"].append(d.challenger_version)
            self._note(week, "promote (gate)", recorded.seq,
                       f"{d.challenger_version} replaces {d.champion_version}: mean AUC "
                       f"{d.comparison[0].champion:.4f} -> {d.comparison[0].challenger:.4f}")
        elif d.outcome == PENDING:
            self.pending.append(recorded)
            self.facts.setdefault("pending_version", d.challenger_version)
            self._note(week, "pending approval", recorded.seq,
                       f"{d.challenger_version} clears every gate (mean AUC {d.comparison[0].champion:.4f} -> "
                       f"{d.comparison[0].challenger:.4f}) and waits for a human sign-off")
        elif d.outcome == REJECT:
            failing = [c for c in d.failing_checks if c.name.startswith(("fidelity", "degradation"))]
            if d.stage == "fidelity" and champion is not None:
                higher = _mean_auc(challenger) > _mean_auc(champion)
                first = higher and "fidelity_rejected_version" not in self.facts
                if first:
                    self.facts["fidelity_rejected_version"] = d.challenger_version
                    self.facts["fidelity_reject"] = (recorded.seq, (self.evaluation_files[challenger.digest],
                                                                    self.evaluation_files[champion.digest]))
                floors = ", ".join(
                    f"{t} KL {challenger.fidelity[t]['kl']:.4f} > {self.policy.fidelity.max_for(t):g}"
                    for t in (c.name.split(":", 1)[1] for c in failing))
                self._note(week, "reject (fidelity floor)", recorded.seq,
                           f"{d.challenger_version}: {floors}; mean AUC {_mean_auc(challenger):.4f} "
                           f"{'>' if higher else '<='} champion {_mean_auc(champion):.4f}", headline=first)
            elif failing:
                first = not any(e.event == "reject (competition)" for e in self.story)
                worse = ", ".join(f"{r.metric} {r.delta_rel:+.2%}" for r in d.comparison[1:] if not r.passed)
                self._note(week, "reject (competition)", recorded.seq,
                           f"{d.challenger_version}: {worse} (limit -{self.policy.max_secondary_degradation:.0%})",
                           headline=first)
        self._refresh_production(recorded)

    # -- the online trial of a challenger waiting for sign-off ------------------------------------

    def _start_trial(self, day: int, pending: Recorded) -> None:
        """Monday: the challenger scores every request in shadow; Wednesday: it serves a canary
        share; Friday before the committee: Welch's test of the canary against the champion."""
        version = pending.decision.challenger_version
        self._at(day, *SHADOW_AT)
        with acting_as(self.ledger, ML_OPS):
            seq = set_traffic(self.ledger, slot=SLOT, challenger_version=version, mode=TrafficMode.SHADOW.value,
                              operator=ML_OPS, reason=(f"online trial of {version}, pending sign-off at seq "
                                                       f"{pending.seq}: shadow scoring of every request"))
        self._refresh_traffic()
        self.trials[version] = {"seqs": [seq]}
        self._note(day // 7, "online trial: shadow", seq, f"{version} scores every request beside {self.production}")
        self._schedule(kst(day + CANARY_AFTER_DAYS, *CANARY_AT), lambda: self.canary(version))
        self._schedule(kst(day + ONLINE_TEST_AFTER_DAYS, *ONLINE_TEST_AT), lambda: self.online_test(version))

    def _trialled(self, version: str) -> bool:
        return self.trial is not None and self.trial["challenger_version"] == version

    def canary(self, version: str) -> None:
        if not self._trialled(version):
            return  # decided (or withdrawn) since
        with acting_as(self.ledger, ML_OPS):
            seq = set_traffic(self.ledger, slot=SLOT, challenger_version=version, mode=CANARY_MODE.value,
                              operator=ML_OPS, reason=(f"online trial of {version}: no shadow anomaly; canary "
                                                       f"{CANARY_MODE.challenger_share:.0%} of requests, routed by request id"))
        self._refresh_traffic()
        self.trials[version]["seqs"].append(seq)
        self.trials[version]["canary_from"] = to_datetime(self.clock())
        self._note((self.clock() - day_start_us(0)) // (7 * 86_400 * 1_000_000), "online trial: canary", seq,
                   f"{version} serves {CANARY_MODE.challenger_share:.0%} of requests")

    def online_test(self, version: str) -> None:
        """Welch's test of the canary: the arms as the ledger recorded them since the canary began."""
        trial = self.trials.get(version, {})
        if not self._trialled(version) or "canary_from" not in trial:
            return
        self.ledger.flush()
        report = compute_online(self.paths.ledger, SLOT, self.policy, challenger_version=version,
                                champion_version=self.production, metrics=ONLINE_METRICS,
                                window=Window(trial["canary_from"], to_datetime(self.clock())))
        seq = record_online(self.ledger, report)
        trial["online"] = (seq, report)
        n = report.n_champion + report.n_challenger
        self._note((self.clock() - day_start_us(0)) // (7 * 86_400 * 1_000_000), "online test", seq,
                   f"observed split {report.n_challenger}/{n} = {report.n_challenger / max(n, 1):.1%} to {version}; "
                   + "; ".join(f"{r.metric} {r.outcome.replace('_', ' ')}" for r in report.results))

    def _online_finding(self, version: str) -> tuple[bool, str]:
        """(whether the online trial speaks against ``version``, a sentence for the minutes)."""
        found = self.trials.get(version, {}).get("online")
        if found is None:
            return False, ""
        seq, report = found
        worse = [r for r in report.results if r.outcome == WORSE]
        return bool(worse), (f"; online trial at seq {seq}: " + "; ".join(r.detail if r.test else f"{r.metric} {r.outcome}"
                                                                           for r in report.results))

    # -- every morning: late outcomes ---------------------------------------------------------------

    def record_outcomes(self, day: int) -> None:
        observed = to_datetime(self.clock())
        outcomes = [{"request_id": request_id, "label": PRODUCT_IDS[label], "observed_at": observed,
                     "values": {"accepted": 1.0 if accepted else 0.0}}
                    for due in self.outcomes_due.pop(day) for request_id, label, accepted in due.rows()]
        with acting_as(self.ledger, OUTCOMES_ACTOR):
            seqs = record_outcomes(self.ledger, outcomes, source=OUTCOMES_DATASET)
        self.outcomes_recorded += len(seqs)

    # -- Tuesday 14:00: the fairness monitor, and the emergency it may cause --------------------

    def fairness_monitor(self, day: int) -> FollowUp | None:
        self.ledger.flush()  # the monitor reads what serving has written up to now
        until = to_datetime(self.clock())
        iso = until.astimezone(KST).isocalendar()
        # The monitor watches the version serving now, over the week before.
        report = compute_segment_fairness(self.paths.ledger, SLOT, self.policy.monitors, self._subjects(),
                                          window=window_ending(until), version=self.production)
        with acting_as(self.ledger, MONITOR_ACTOR):
            run = record_monitor_report(self.ledger, report, run_id=f"fairness/{iso.year}-W{iso.week:02d}")
        adverse = [(seq, a) for seq, a in zip(run.alert_seqs, report.alerts)
                   if a.monitor == "fairness.disparate_impact" and a.measurements.get("value") is not None
                   and a.measurements["value"] < a.measurements["min"]]
        if not adverse:
            return None
        alert_seq, alert = adverse[0]
        m = alert.measurements
        self._note(day // 7, "fairness alert", alert_seq,
                   f"DI {m['value']:.2f} (CI {m['ci_low']:.2f}-{m['ci_high']:.2f}) for age {m['age_band']} in "
                   f"{m['region']} vs the rest of the band, served by {report.version}")
        respond_at = self.clock() + EMERGENCY_RESPONSE_MINUTES * 60_000_000
        return respond_at, lambda: self.emergency_override(day, report.version, alert_seq, alert.summary)

    def _subjects(self) -> pa.Table:
        """The bank's customer attributes the monitor joins on (written beside the ledger)."""
        if self._subjects_table is None:
            self._subjects_table = subjects_table(self.world.customer_base(self.n_requests))
            pq.write_table(self._subjects_table, self.paths.subjects)
        return self._subjects_table

    def emergency_override(self, day: int, breached_version: str, alert_seq: int, summary: str) -> None:
        """The duty engineer restores the most recent former production version (known good: it
        served before the breached one) with an explicit force-promote."""
        view = load_registry(self.paths.ledger)
        if view.registry.production(SLOT) != breached_version:
            return  # already replaced since the alert
        known_good = view.registry.rollback_target(SLOT)
        if known_good is None:
            return  # nothing to go back to: the alert stands for the committee
        served_from = [t.ts for t in view.registry.history(SLOT) if t.version == known_good and t.to_state == "production"]
        reason = (f"DI breach emergency rollback: fairness monitor alert seq {alert_seq} ({summary}); "
                  f"restoring known-good {known_good}, production since {kst_text(int(served_from[0].timestamp() * 1e6))} "
                  f"until {breached_version} replaced it")
        with acting_as(self.ledger, DUTY_ENGINEER):
            recorded = force_promote(self.ledger, slot=SLOT, version=known_good, operator=DUTY_ENGINEER, reason=reason,
                                     responds_to_seq=alert_seq)
        self.facts.setdefault("force_promote", (recorded, alert_seq))
        self.unreviewed_overrides.append((recorded, alert_seq))
        self._note(day // 7, "force-promote (manual)", recorded.seq,
                   f"{DUTY_ENGINEER} restores {known_good} over {breached_version}")
        self._refresh_production(recorded)

    # -- Friday 10:00: the MRM committee ------------------------------------------------------------

    def committee(self, day: int) -> None:
        week, date = day // 7, to_datetime(self.clock()).astimezone(KST).date()
        for recorded, alert_seq in self.unreviewed_overrides:
            self._review_override(week, date, recorded, alert_seq)
        self.unreviewed_overrides.clear()
        for pending in self.pending:
            self._review_pending(week, date, pending)
        self.pending.clear()

    def _review_override(self, week: int, date: dt.date, recorded: Recorded, alert_seq: int) -> None:
        d = recorded.decision
        with acting_as(self.ledger, COMMITTEE_CHAIR):
            seq = review_override(self.ledger, reviews_seq=recorded.seq, outcome="upheld", reviewer=COMMITTEE_CHAIR,
                                  note=(f"MRM committee {date.isoformat()}: the force-promote of {d.challenger_version} "
                                        f"answering alert seq {alert_seq} was appropriate: the fairness monitor's "
                                        "breach was confirmed on the served decisions"))
            self._note(week, "override reviewed", seq, f"committee upholds the force-promote at seq {recorded.seq}")
            if self.policy.auto_promote:
                signoff = replace(self.policy, auto_promote=False)
                seq = self.ledger.log_operation(
                    event_type="policy_change", component="gates.policy", status="applied", correlation_id=SLOT,
                    details={"slot": SLOT, "previous_policy_digest": policy_digest(self.policy),
                             "policy_digest": policy_digest(signoff),
                             "changes": [{"key": "gate.auto_promote", "from": True, "to": False}],
                             "approved_by": COMMITTEE_CHAIR, "minutes": f"MRM committee {date.isoformat()}",
                             "reason": ("an automatically promoted challenger breached disparate impact in "
                                        "production; from now on a challenger that clears every gate needs the "
                                        "committee's sign-off, after a segment fairness review on the holdout "
                                        "(SR 11-7 effective challenge, EU AI Act Art. 14)")}, durable=True)
                self.policy = signoff
                self.facts["policy_change_seq"] = seq
                self._note(week, "policy change", seq, "auto_promote = false: human sign-off from now on")

    def _review_pending(self, week: int, date: dt.date, pending: Recorded) -> None:
        """The committee approves a pending challenger unless its recommendations on the gate's
        holdout breach the segment fairness ranges, or production changed since its gate run."""
        d = pending.decision
        version, compared_with = d.challenger_version, d.champion_version
        minutes = f"MRM committee {date.isoformat()}"
        with acting_as(self.ledger, COMMITTEE_CHAIR):
            online_worse, online = self._online_finding(version)
            if compared_with != self.production:
                recorded = decline(self.ledger, slot=SLOT, version=version, operator=COMMITTEE_CHAIR,
                                   reason=f"{minutes}: compared against {compared_with}, but {self.production} serves now")
            elif online_worse:
                recorded = decline(self.ledger, slot=SLOT, version=version, operator=COMMITTEE_CHAIR,
                                   reason=f"{minutes}: gate evidence at seq {pending.seq} reviewed{online}; not approved")
            else:
                holdout, _ = self._holdout(self._epoch_of(pending))
                proba = self.models[version].predict_proba(holdout.customers)
                breaches = holdout_segment_breaches(holdout.customers, proba, self.policy.monitors)
                if breaches:
                    ratios = [f for f in breaches if f.result.metric == "disparate_impact" and f.result.value is not None]
                    worst = min(ratios, key=lambda f: f.result.value) if ratios else breaches[0]
                    recorded = decline(self.ledger, slot=SLOT, version=version, operator=COMMITTEE_CHAIR, reason=(
                        f"{minutes}: gate evidence at seq {pending.seq} reviewed; {len(breaches)} segment finding(s) on "
                        f"the holdout, worst age {worst.age_band} in {worst.region} {worst.result.metric} "
                        f"{worst.result.value:.3f}{online}; not approved"))
                else:
                    recorded = approve(self.ledger, slot=SLOT, version=version, operator=COMMITTEE_CHAIR, reason=(
                        f"{minutes}: gate evidence at seq {pending.seq} reviewed; no age band x region segment "
                        f"breaches the disparate impact or parity ranges on the holdout{online}; approved for production"))
        if recorded.decision.outcome == "approve":
            self.facts["promoted"].append(version)
            self.facts.setdefault("approved", (version, COMMITTEE_CHAIR))
            self._note(week, "approve (human sign-off)", recorded.seq, f"{COMMITTEE_CHAIR} approves {version}")
        else:
            self.facts["declined"].append(version)
            self._note(week, "decline (human sign-off)", recorded.seq, f"{COMMITTEE_CHAIR} declines {version}")
        self._refresh_production(recorded)

    def _epoch_of(self, pending: Recorded) -> int:
        week = next(w for w, item in self.plan.items() if item.spec.version == pending.decision.challenger_version)
        return self.plan[week].holdout_epoch

    # -- key rotation and checkpoints ---------------------------------------------------------------

    def rotate_key(self, week: int) -> None:
        """Semi-annual HMAC key rotation. The new keyring is saved before the ledger uses it:
        a ledger whose newest key is lost can no longer be written or verified."""
        self.keyring = self.keyring.with_key(SECOND_KEY_ID, secrets.token_bytes(32))
        self.keyring.save(self.paths.keyring)
        seq = self.ledger.rotate_key(self.keyring, reason="scheduled semi-annual HMAC key rotation",
                                     actor=KEY_CUSTODIAN)
        self.facts["rotation_seq"] = seq
        self._note(week, "HMAC key rotation", seq, f"{FIRST_KEY_ID} -> {SECOND_KEY_ID} (entry MACed under the old key)")

    def checkpoint(self) -> None:
        self.ledger.checkpoint()


def _mean_auc(e: Evaluation) -> float:
    return float(np.mean([m["auc"] for m in e.metrics.values()]))


def ledger_content(ledger_dir: str | Path) -> dict[str, pa.Table]:
    """Every table's typed columns, minus what derives from the random ledger id and key
    material: ``mac``, and in ``details`` the genesis entry's ``ledger_id`` / ``key_check`` and
    the key rotation's ``new_key_check``. Two runs with the same seed give equal content."""
    out = {}
    for name, table in read_tables(ledger_dir).items():
        table = table.drop_columns(["mac"])
        if name == "operation":
            details = [_without_key_material(t) for t in table.column("details").to_pylist()]
            table = table.set_column(table.schema.get_field_index("details"), "details", pa.array(details, pa.string()))
        out[name] = table
    return out


def _without_key_material(text: str | None) -> str | None:
    if text is None or "key_check" not in text and "ledger_id" not in text:
        return text
    d = json.loads(text)
    for k in ("ledger_id", "key_check", "new_key_check"):
        d.pop(k, None)
    return json.dumps(d, sort_keys=True)


def run_demo(out: str | Path = "demo-out", requests: int = DEFAULT_REQUESTS, seed: int = DEFAULT_SEED, *,
             weeks: int = WEEKS) -> DemoResult:
    """Replay the year into ``out`` (replacing an earlier demo there), verify the ledger with
    the HMAC key and publicly, answer the forensic questions, prove the disputed request.

    ``requests`` is the year's request count (millions are fine: requests are written in Arrow
    batches); ``weeks`` < 52 replays only the first weeks (quick looks and tests), serving the
    requests of those weeks only."""
    if requests < 1:
        raise ValueError("requests must be at least 1")
    if not 1 <= weeks <= WEEKS:
        raise ValueError(f"weeks must be 1..{WEEKS}")
    paths = DemoPaths.under(Path(out))
    _prepare_out(paths.out)
    shutil.copyfile(POLICY_FILE, paths.policy)
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    year = _Year(paths, requests, seed, weeks)
    year.run()
    seconds["simulate"] = time.perf_counter() - started

    started = time.perf_counter()
    hmac = HmacChainVerifier(year.keyring)(paths.ledger)
    seconds["verify_hmac"] = time.perf_counter() - started
    paths.public_key.write_text("".join(v.to_vkey() + "\n" for v in year.keyring.verifiers()), encoding="utf-8")
    started = time.perf_counter()
    public = SignedCheckpointVerifier(load_verifiers(paths.public_key), state_path=paths.public_state)(paths.ledger)
    seconds["verify_public"] = time.perf_counter() - started

    started = time.perf_counter()
    # the answers rest on what the public key vouched for, as an examiner's would
    forensics = run_forensic_queries(paths.ledger, public if public.ok else None)
    paths.reconstruction.write_text(json.dumps(forensics.reconstruction, indent=2, ensure_ascii=False) + "\n",
                                    encoding="utf-8")
    paths.reconstruction.with_suffix(".txt").write_text(forensics.reconstruction_text + "\n", encoding="utf-8")
    proof = prove_entries(paths.ledger, find_request(paths.ledger, forensics.disputed_request_id))
    paths.proof.mkdir(exist_ok=True)
    proof_path = write_proof(proof, paths.proof / f"{forensics.disputed_request_id}.proof.json")
    proof_report = verify_proof(json.loads(proof_path.read_text(encoding="utf-8")), year.keyring.verifiers())
    write_manifest(serving_manifest(paths.ledger), paths.manifest)
    year._subjects()  # written even if the year was too short for a fairness run
    seconds["forensics"] = time.perf_counter() - started

    result = _result(year, paths, seed, weeks, forensics, proof_path, hmac.ok, public.ok, proof_report.ok, seconds)
    paths.result.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    return result


def _result(year: _Year, paths: DemoPaths, seed: int, weeks: int, forensics: Forensics, proof_path: Path,
            hmac_ok: bool, public_ok: bool, proof_ok: bool, seconds: dict[str, float]) -> DemoResult:
    f = year.facts
    forced = f.get("force_promote")
    approved = f.get("approved")
    drift, rolled = f.get("drift"), f.get("rollback")
    trial = next(iter(year.trials.items()), None)
    return DemoResult(
        paths=paths, seed=seed, requests=year.served_requests, weeks=weeks,
        entries=sum(forensics.entries_by_table.values()), entries_by_table=forensics.entries_by_table,
        story=tuple(year.story), disputed_request_id=forensics.disputed_request_id, proof_path=proof_path,
        bootstrap_version=f.get("bootstrap_version"), promoted_versions=tuple(f["promoted"]),
        fidelity_rejected_version=f.get("fidelity_rejected_version"), pending_version=f.get("pending_version"),
        fidelity_reject_seq=f["fidelity_reject"][0] if "fidelity_reject" in f else None,
        fidelity_reject_evaluations=f["fidelity_reject"][1] if "fidelity_reject" in f else (),
        approved_version=approved[0] if approved else None, approver=approved[1] if approved else None,
        declined_versions=tuple(f["declined"]),
        force_promoted_version=forced[0].decision.challenger_version if forced else None,
        force_promote_operator=forced[0].decision.operator if forced else None,
        force_promote_seq=forced[0].seq if forced else None, fairness_alert_seq=forced[1] if forced else None,
        schema_change_seq=f.get("schema_change_seq"), rotation_seq=f.get("rotation_seq"),
        policy_change_seq=f.get("policy_change_seq"), outcomes_recorded=year.outcomes_recorded,
        outcomes_outstanding=sum(len(d) for due in year.outcomes_due.values() for d in due),
        hmac_verified=hmac_ok, public_verified=public_ok, proof_verified=proof_ok,
        unsuitable_served=forensics.unsuitable_served, seconds={k: round(v, 2) for k, v in seconds.items()},
        drift_runs=year.drift_runs, drift_alert_seq=drift[0] if drift else None,
        retrain_proposal_seq=drift[1] if drift else None, retrain_answered_seq=f.get("retrain_answered_seq"),
        trial_version=trial[0] if trial else None, trial_seqs=tuple(trial[1]["seqs"]) if trial else (),
        online_evaluation_seq=trial[1]["online"][0] if trial and "online" in trial[1] else None,
        rollback_seq=rolled[0] if rolled else None, rollback_alert_seq=rolled[1] if rolled else None,
        rolled_back_version=rolled[2] if rolled else None,
    )


__all__ = ["DEFAULT_REQUESTS", "DEFAULT_SEED", "SLOT", "DemoPaths", "DemoResult", "StoryEvent", "ledger_content",
           "run_demo"]
