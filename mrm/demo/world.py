"""The synthetic world of the demo: a Korean retail bank recommending investment products.

Everything here is pure and deterministic given ``WorldConfig.seed``: customers, products, the
label process (which product a customer would accept, with drift and a regional promotion),
late-arriving outcomes, the frozen holdouts, the request stream, the two feature schemas and
the input digest. Nothing writes to the ledger.

Randomness is keyed, never sequential: every block of customers, every day of outcomes or
requests and every holdout epoch draws from its own ``numpy.random.Generator`` seeded with
``SeedSequence([seed, stream, key])``. So any slice can be regenerated on its own, chunked
generation equals generation at once, and the models do not depend on how many requests the
demo serves.

Label process
-------------
A customer accepts the product with the highest utility plus Gumbel noise (a multinomial
logit, so ``World.choice_proba`` is the exact acceptance distribution and serves as the
fidelity teacher). Utilities rise with risk appetite (questionnaire, experience, assets,
understanding; debt and age lower it) times the product's riskiness, plus age-specific tastes.
Three things move them over the year: a small seasonal term, a market regime change from
week 18 (``WorldConfig.drift``) that moves both levels and slopes, and a four-week retiree
deposit promotion for 60+ in Gyeonggi-Incheon (``WorldConfig.segment_event``). Regions differ
in age mix only, so a model that treats regions alike within an age band is fair.

Conventions
-----------
* Day ``d`` is ``START_DATE + d`` (day 0 is Monday 6 Jan 2025); week ``w`` starts on day ``7 w``.
  Negative days are the pre-launch history the bootstrap model is trained on.
* Risk grades follow the Korean six-tier practice: 1 = very high risk ... 6 = very low risk.
  A product is riskier when its grade number is smaller.
* Amounts are KRW.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import struct
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from typing import Iterator, Mapping, Sequence

import numpy as np

# --------------------------------------------------------------------------------------------
# Calendar
# --------------------------------------------------------------------------------------------

START_DATE = _dt.date(2025, 1, 6)  # a Monday
YEAR_DAYS = 364  # 52 weeks
KST = _dt.timezone(_dt.timedelta(hours=9))
_EPOCH_US_DAY0 = int(
    _dt.datetime(START_DATE.year, START_DATE.month, START_DATE.day, tzinfo=KST).timestamp()
) * 1_000_000
_DAY_US = 86_400 * 1_000_000

# Korean public holidays in the simulated year (request volume drops on them).
_HOLIDAYS_2025 = (
    "2025-01-27", "2025-01-28", "2025-01-29", "2025-01-30", "2025-03-03", "2025-05-05",
    "2025-05-06", "2025-06-03", "2025-06-06", "2025-08-15", "2025-10-03", "2025-10-06",
    "2025-10-07", "2025-10-08", "2025-10-09", "2025-12-25", "2026-01-01",
)


def day_to_date(day: int) -> _dt.date:
    return START_DATE + _dt.timedelta(days=int(day))


def day_start_us(day: int) -> int:
    """UTC microseconds since the Unix epoch of 00:00 KST on ``day``."""
    return _EPOCH_US_DAY0 + int(day) * _DAY_US


# --------------------------------------------------------------------------------------------
# Categories and products
# --------------------------------------------------------------------------------------------

AGE_BANDS: tuple[str, ...] = ("19-29", "30-39", "40-49", "50-59", "60-69", "70+")
_AGE_BAND_LO = np.array([19, 30, 40, 50, 60, 70])
_AGE_BAND_HI = np.array([29, 39, 49, 59, 69, 89])  # inclusive
_AGE_BAND_P = np.array([0.16, 0.15, 0.18, 0.19, 0.18, 0.14])

# Macro regions (romanised); shares are close to the 2024 resident population.
REGIONS: tuple[str, ...] = (
    "Seoul", "Gyeonggi-Incheon", "Gangwon", "Chungcheong", "Honam", "Daegu-Gyeongbuk",
    "Busan-Ulsan-Gyeongnam", "Jeju",
)
_REGION_P = np.array([0.182, 0.323, 0.029, 0.109, 0.097, 0.096, 0.151, 0.013])
_REGION_P = _REGION_P / _REGION_P.sum()
_METRO = np.array([True, True, False, False, False, False, False, False])
# Older population outside the capital area: log-odds tilt towards the older bands.
_REGION_AGE_TILT = np.array([0.0, -0.05, 0.35, 0.15, 0.3, 0.25, 0.15, 0.2])
# Regions differ in age mix (above) but, within an age band, not in income or wealth: the
# fairness story needs normal models to be fair across regions within an age band.
_REGION_INCOME = np.zeros(len(REGIONS))

GENDERS: tuple[str, ...] = ("F", "M")

PROFILE_TYPES: tuple[str, ...] = ("stable", "conservative", "neutral", "active", "aggressive")
PROFILE_TYPES_KO: tuple[str, ...] = ("안정형", "안정추구형", "위험중립형", "적극투자형", "공격투자형")

RISK_GRADE_NAMES: Mapping[int, str] = {
    1: "very high risk", 2: "high risk", 3: "moderately high risk",
    4: "moderate risk", 5: "low risk", 6: "very low risk",
}


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    name_ko: str
    kind: str  # deposit | fund | derivative_linked
    risk_grade: int  # 1 = very high risk ... 6 = very low risk
    principal_protected: bool

    @property
    def task(self) -> str:
        """Name of this product's one-vs-rest evaluation task."""
        return f"task_{self.id}"


PRODUCTS: tuple[Product, ...] = (
    Product("time_deposit", "Time deposit", "정기예금", "deposit", 6, True),
    Product("gov_bond_fund", "Government bond fund", "국공채 펀드", "fund", 5, False),
    Product("elb", "Equity-linked bond (principal-protected)", "ELB", "derivative_linked", 5, True),
    Product("corp_bond_fund", "Corporate bond fund", "회사채 펀드", "fund", 4, False),
    Product("balanced_fund", "Balanced fund", "혼합형 펀드", "fund", 3, False),
    Product("kr_equity_fund", "Korean equity fund", "국내주식형 펀드", "fund", 2, False),
    Product("global_equity_fund", "Global equity fund", "해외주식형 펀드", "fund", 2, False),
    Product("els", "Equity-linked security (step-down, knock-in)", "ELS", "derivative_linked", 1, False),
)
PRODUCT_IDS: tuple[str, ...] = tuple(p.id for p in PRODUCTS)
PRODUCT_INDEX: Mapping[str, int] = {p.id: i for i, p in enumerate(PRODUCTS)}
PRODUCT_GRADES = np.array([p.risk_grade for p in PRODUCTS], dtype=np.int64)
TASKS: tuple[str, ...] = tuple(p.task for p in PRODUCTS)
N_PRODUCTS = len(PRODUCTS)
DEPOSIT = PRODUCT_INDEX["time_deposit"]


def product(pid: str | int) -> Product:
    return PRODUCTS[pid] if isinstance(pid, (int, np.integer)) else PRODUCTS[PRODUCT_INDEX[pid]]


def favourable(final_product: np.ndarray) -> np.ndarray:
    """The outcome a fairness monitor counts as favourable: the customer was offered an
    investment product (anything served other than the plain time deposit). ``-1`` means
    nothing was served (blocked) and is unfavourable."""
    final_product = np.asarray(final_product)
    return (final_product >= 0) & (final_product != DEPOSIT)


# --------------------------------------------------------------------------------------------
# Keyed randomness
# --------------------------------------------------------------------------------------------

_KEY_OFFSET = 1_000_000  # keys are shifted so negative days stay non-negative entropy


def _stream_code(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def keyed_rng(seed: int, stream: str, key: int = 0) -> np.random.Generator:
    """The Generator for one (stream, key) cell; independent of every other cell."""
    return np.random.default_rng(
        np.random.SeedSequence([int(seed) & (2**63 - 1), _stream_code(stream), int(key) + _KEY_OFFSET])
    )


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _subject_keys(seed: int, stream: str, index: np.ndarray) -> np.ndarray:
    base = np.uint64((_stream_code(stream) ^ (int(seed) * 0x2545F4914F6CDD1D)) & (2**64 - 1))
    with np.errstate(over="ignore"):
        return _splitmix64(_splitmix64(np.asarray(index, dtype=np.uint64) ^ base))


def subject_id_from_key(key: int) -> str:
    return f"SUB-{int(key):016x}"


# --------------------------------------------------------------------------------------------
# Customers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerProfile:
    """One customer, as the suitability questionnaire (KFCPA Art. 17) captured them."""

    subject_id: str
    age: int
    age_band: str
    income_tier: int  # 1 (lowest quintile) .. 5 (highest)
    region: str
    gender: str
    assets_krw: float  # financial assets
    invest_experience_years: int
    risk_tolerance: int  # 1 (lowest) .. 5, questionnaire answer
    knowledge_level: int  # 1 low .. 3 high, understanding of investment products
    debt_ratio: float  # debt service / income (DSR-like), 0 .. 1.5
    profile_confirmed: bool  # the customer confirmed the captured profile

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, eq=False)
class Customers:
    """A batch of customers as parallel numpy arrays (struct of arrays)."""

    subject_key: np.ndarray  # uint64, the pseudonym's source
    age: np.ndarray  # int16
    age_band: np.ndarray  # int8 index into AGE_BANDS
    income_tier: np.ndarray  # int8 1..5
    region: np.ndarray  # int8 index into REGIONS
    gender: np.ndarray  # int8 index into GENDERS
    assets_krw: np.ndarray  # float64
    invest_experience_years: np.ndarray  # int16
    risk_tolerance: np.ndarray  # int8 1..5
    knowledge_level: np.ndarray  # int8 1..3
    debt_ratio: np.ndarray  # float64
    profile_confirmed: np.ndarray  # bool
    activity: np.ndarray  # float64, relative request frequency (not a profile attribute)

    def __len__(self) -> int:
        return int(self.age.shape[0])

    def _map(self, fn) -> "Customers":
        return Customers(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def take(self, idx) -> "Customers":
        return self._map(lambda a: a[idx])

    def __getitem__(self, idx) -> "Customers":
        """A sub-batch (an integer gives a batch of one)."""
        if isinstance(idx, (int, np.integer)):
            idx = [int(idx)]
        return self.take(idx)

    @staticmethod
    def concat(parts: Sequence["Customers"]) -> "Customers":
        return Customers(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Customers)})

    def equals(self, other: "Customers") -> bool:
        return all(np.array_equal(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    def subject_ids(self) -> list[str]:
        return [f"SUB-{k:016x}" for k in self.subject_key.tolist()]

    def row(self, i: int) -> CustomerProfile:
        return CustomerProfile(
            subject_id=subject_id_from_key(self.subject_key[i]),
            age=int(self.age[i]),
            age_band=AGE_BANDS[self.age_band[i]],
            income_tier=int(self.income_tier[i]),
            region=REGIONS[self.region[i]],
            gender=GENDERS[self.gender[i]],
            assets_krw=float(self.assets_krw[i]),
            invest_experience_years=int(self.invest_experience_years[i]),
            risk_tolerance=int(self.risk_tolerance[i]),
            knowledge_level=int(self.knowledge_level[i]),
            debt_ratio=float(self.debt_ratio[i]),
            profile_confirmed=bool(self.profile_confirmed[i]),
        )

    def rows(self) -> list[CustomerProfile]:
        return [self.row(i) for i in range(len(self))]

    @staticmethod
    def from_profiles(profiles: Sequence[CustomerProfile | Mapping]) -> "Customers":
        """Build a batch from hand-written profiles (tests, a disputed case)."""
        ps = [p if isinstance(p, CustomerProfile) else CustomerProfile(**p) for p in profiles]

        def key(sid: str) -> int:
            if sid.startswith("SUB-") and len(sid) == 20:
                return int(sid[4:], 16)
            return int.from_bytes(hashlib.sha256(sid.encode()).digest()[:8], "big")

        age = np.array([p.age for p in ps], dtype=np.int16)
        return Customers(
            subject_key=np.array([key(p.subject_id) for p in ps], dtype=np.uint64),
            age=age,
            age_band=age_band_index(age),
            income_tier=np.array([p.income_tier for p in ps], dtype=np.int8),
            region=np.array([REGIONS.index(p.region) for p in ps], dtype=np.int8),
            gender=np.array([GENDERS.index(p.gender) for p in ps], dtype=np.int8),
            assets_krw=np.array([p.assets_krw for p in ps], dtype=np.float64),
            invest_experience_years=np.array([p.invest_experience_years for p in ps], dtype=np.int16),
            risk_tolerance=np.array([p.risk_tolerance for p in ps], dtype=np.int8),
            knowledge_level=np.array([p.knowledge_level for p in ps], dtype=np.int8),
            debt_ratio=np.array([p.debt_ratio for p in ps], dtype=np.float64),
            profile_confirmed=np.array([p.profile_confirmed for p in ps], dtype=bool),
            activity=np.ones(len(ps)),
        )

    def to_pandas(self):  # pragma: no cover - convenience for notebooks
        import pandas as pd

        return pd.DataFrame(
            {
                "subject_id": self.subject_ids(),
                "age": self.age,
                "age_band": np.array(AGE_BANDS)[self.age_band],
                "income_tier": self.income_tier,
                "region": np.array(REGIONS)[self.region],
                "gender": np.array(GENDERS)[self.gender],
                "assets_krw": self.assets_krw,
                "invest_experience_years": self.invest_experience_years,
                "risk_tolerance": self.risk_tolerance,
                "knowledge_level": self.knowledge_level,
                "debt_ratio": self.debt_ratio,
                "profile_confirmed": self.profile_confirmed,
            }
        )


def age_band_index(age: np.ndarray) -> np.ndarray:
    return (np.searchsorted(_AGE_BAND_LO, np.asarray(age), side="right") - 1).clip(0).astype(np.int8)


def _ordinal(latent: np.ndarray, cuts: Sequence[float], base: int = 1) -> np.ndarray:
    return (np.searchsorted(np.asarray(cuts), latent) + base).astype(np.int8)


def generate_customers(rng: np.random.Generator, n: int) -> Customers:
    """Draw ``n`` customers. Correlations: region -> age (provinces are older); age, region
    and gender -> income; income and age -> assets; those -> investment experience ->
    knowledge -> risk tolerance; age -> debt ratio (mortgages in the 30s-40s); age ->
    confirmation rate. The draw order is fixed, so a Generator state gives one batch."""
    u = rng.random((n, 12))
    z = rng.standard_normal((n, 8))

    # region, then an age band tilted by region, then an age within the band
    region = np.searchsorted(np.cumsum(_REGION_P), u[:, 0] * _REGION_P.sum(), side="right").clip(0, len(REGIONS) - 1)
    tilt = _REGION_AGE_TILT[region][:, None] * (np.arange(len(AGE_BANDS)) - 2.5)[None, :] / 2.5
    w = _AGE_BAND_P[None, :] * np.exp(tilt)
    cw = np.cumsum(w, axis=1)
    band = (cw < (u[:, 1] * cw[:, -1])[:, None]).sum(axis=1).clip(0, len(AGE_BANDS) - 1)
    lo, hi = _AGE_BAND_LO[band], _AGE_BAND_HI[band]
    # within 70+, density falls with age (square of a uniform)
    frac = np.where(band == len(AGE_BANDS) - 1, u[:, 2] ** 2, u[:, 2])
    age = (lo + np.floor(frac * (hi - lo + 1))).astype(np.int16)
    a = (age - 45.0) / 15.0

    # gender: slightly more women among the old
    p_male = 0.5 - 0.06 * (age >= 70)
    gender = (u[:, 3] < p_male).astype(np.int8)

    # income tier: hump in the 40s-50s, small gender gap
    inc_lat = 0.5 * np.maximum(1.0 - a**2, -1.0) + _REGION_INCOME[region] + 0.15 * gender - 0.35 * (age >= 65) + z[:, 0]
    income = _ordinal(inc_lat, (-0.98, -0.31, 0.26, 0.93))

    # financial assets (KRW): grow with income and age, lognormal
    log_assets = 7.05 + 0.22 * (income - 3) + 0.25 * a + 0.45 * z[:, 1]
    log_assets = np.clip(log_assets, 5.3, 10.2)
    assets = np.round(10.0**log_assets, -3)

    # investment experience (years): whether any, then how long
    p_exp = 1.0 / (1.0 + np.exp(-(-0.3 + 0.45 * (income - 3) + 1.1 * (log_assets - 7.0) - 0.25 * a**2 + 0.2 * gender)))
    has_exp = u[:, 4] < p_exp
    years = np.floor(-np.log1p(-u[:, 5]) * (2.0 + 0.12 * np.clip(age - 22, 0, None))) + 1
    years = np.minimum(years, np.maximum(age - 19, 1))
    experience = np.where(has_exp, years, 0).astype(np.int16)
    le = np.log1p(experience)

    # understanding of investment products (1..3)
    kn_lat = 0.7 * le + 0.2 * (income - 3) - 0.2 * (age >= 70) + 0.8 * z[:, 2]
    knowledge = _ordinal(kn_lat, (0.24, 1.45))

    # debt service ratio: mortgages in the 30s-40s, falls in retirement, higher for low income
    bump = np.exp(-(((age - 40.0) / 11.0) ** 2))
    debt = 0.12 + 0.28 * bump - 0.035 * (income - 3) + 0.02 * (age < 65)
    debt = debt * np.exp(0.55 * z[:, 4])
    debt = np.where(u[:, 6] < 0.12, 0.0, debt)  # no debt at all
    debt = np.round(np.clip(debt, 0.0, 1.5), 3)

    # questionnaire risk tolerance (1..5): answers track experience, wealth, understanding
    # and leverage, with noise
    rt_lat = (
        0.55 * le + 0.18 * (income - 3) + 0.25 * (log_assets - 7.0) - 0.3 * a
        - 0.2 * (age >= 70) + 0.15 * gender + 0.45 * (knowledge - 2) - 0.8 * (debt - 0.3) + 0.6 * z[:, 3]
    )
    risk_tol = _ordinal(rt_lat, (-0.74, 0.11, 1.07, 1.93))

    # confirmation of the captured profile (KFCPA Art. 17): lower among the oldest
    p_conf = 0.965 - 0.09 * (age >= 70) - 0.05 * (age >= 80) - 0.02 * (age < 25)
    confirmed = u[:, 7] < p_conf

    # how often the customer asks for advice: seniors come to the branch more often
    age_activity = np.where(age >= 70, 1.5, np.where(age >= 60, 1.8, np.where(age >= 40, 1.3, 1.0)))
    activity = age_activity * np.exp(0.8 * z[:, 5] - 0.32)

    return Customers(
        subject_key=np.zeros(n, dtype=np.uint64),
        age=age,
        age_band=band.astype(np.int8),
        income_tier=income,
        region=region.astype(np.int8),
        gender=gender,
        assets_krw=assets,
        invest_experience_years=experience,
        risk_tolerance=risk_tol,
        knowledge_level=knowledge,
        debt_ratio=debt,
        profile_confirmed=confirmed,
        activity=activity,
    )


CUSTOMER_BLOCK = 4096


def customers_stream(seed: int, stream: str, start: int, stop: int, block: int = CUSTOMER_BLOCK) -> Customers:
    """Customers ``start .. stop-1`` of a named stream. Customer ``i`` lives in block
    ``i // block``, drawn from ``keyed_rng(seed, 'customers/'+stream, i // block)``, so any
    slice equals the same slice of one big draw. Subject ids are a keyed hash of the index."""
    if not 0 <= start <= stop:
        raise ValueError("need 0 <= start <= stop")
    parts = []
    for b in range(start // block, (stop + block - 1) // block):
        lo, hi = b * block, (b + 1) * block
        blk = generate_customers(keyed_rng(seed, "customers/" + stream, b), block)
        parts.append(blk.take(slice(max(start, lo) - lo, min(stop, hi) - lo)))
    out = Customers.concat(parts) if parts else generate_customers(np.random.default_rng(0), 0)
    keys = _subject_keys(seed, stream, np.arange(start, stop, dtype=np.uint64))
    return replace(out, subject_key=keys)


# --------------------------------------------------------------------------------------------
# The label process
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentEvent:
    """A temporary, genuine change of behaviour in one segment: a regional high-rate deposit
    for seniors (실버 특판 예금). While it runs, customers aged ``min_age``..``max_age`` in
    ``region`` overwhelmingly take the promoted product. A model trained only on those weeks
    learns it and keeps steering the segment away from investment products after it ends:
    the fairness breach of the story."""

    region: str = "Gyeonggi-Incheon"
    min_age: int = 60
    max_age: int = 120
    product: str = "time_deposit"
    start_day: int = 147  # week 21
    end_day: int = 175  # exclusive; weeks 21-24
    utility_shift: float = 6.0

    def active(self, day: int) -> bool:
        return self.start_day <= day < self.end_day


@dataclass(frozen=True)
class Campaign:
    """A mobile-app campaign for first-time investors: while it runs, ``share`` of each day's
    requests come from young customers new to advice (a separate pool, under ``max_age``)
    instead of the usual population. The requests' inputs really shift (younger, fewer
    assets, little experience): what the nightly drift monitor sees. It changes who asks,
    not how anyone chooses, so the models and the gate are unaffected."""

    start_day: int = 28  # week 4, Monday 3 February 2025
    end_day: int = 35  # exclusive: one week
    share: float = 0.5
    max_age: int = 34
    pool_size: int = 4_000

    def active(self, day: int) -> bool:
        return self.start_day <= day < self.end_day


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 20250106
    # market regime change (rate hikes, Hong Kong H-index ELS losses): ramps in linearly
    drift: bool = True
    regime_start_day: int = 126  # week 18
    regime_ramp_days: int = 21
    seasonal_amplitude: float = 0.12  # year-end deposit season, small weekly movement
    segment_event: SegmentEvent | None = field(default_factory=SegmentEvent)
    campaign: Campaign | None = field(default_factory=Campaign)
    outcomes_per_day: int = 1200  # labelled outcomes the bank records per day (training data)
    holdout_size: int = 12_000
    # epoch e is drawn from the world as it was on holdout_days[e]. Epoch 1 is the refresh
    # of week 26 after the regime change, drawn from the latest fully labelled outcomes (day
    # 168, inside the promotion); epoch 2 is the re-draw of week 28 after the incident.
    holdout_days: tuple[int, ...] = (0, 168, 189)
    max_label_delay: int = 14


# Intercepts and regime shifts per product (order of PRODUCTS).
_ALPHA = np.array([0.0, 0.15, -0.02, 0.44, 0.69, 0.09, 0.43, -1.27])
_RISKINESS = (6 - PRODUCT_GRADES) / 5.0  # 0 (deposit) .. 1 (ELS)
_REGIME_SHIFT = np.array([0.4, -0.2, 0.2, -0.2, -0.1, -0.2, 0.25, -0.7])
_SEASON = np.array([1.0, 0.3, 0.0, 0.0, -0.3, -0.6, -0.3, 0.0])


class World:
    """The seeded world. Cheap to construct; per-day data are cached."""

    def __init__(self, config: WorldConfig | None = None, **overrides):
        cfg = config or WorldConfig()
        if overrides:
            cfg = replace(cfg, **overrides)
        self.config = cfg
        self.seed = cfg.seed
        self._outcome_cache: dict[int, LabelledBatch] = {}

    # ---- regime -------------------------------------------------------------------------
    def regime(self, day: int) -> float:
        """0 before the regime change, 1 after it, linear in between (0 if drift is off)."""
        c = self.config
        if not c.drift:
            return 0.0
        return float(np.clip((day - c.regime_start_day) / max(c.regime_ramp_days, 1), 0.0, 1.0))

    def utilities(self, cust: Customers, day: int) -> np.ndarray:
        """Systematic utility of each product for each customer on ``day`` (n x K). The
        customer accepts argmax(utility + Gumbel noise), i.e. a multinomial logit."""
        c = self.config
        rt = cust.risk_tolerance - 3.0
        le = np.log1p(cust.invest_experience_years) - 0.8
        la = np.log10(np.maximum(cust.assets_krw, 1.0)) - 7.0
        inc = cust.income_tier - 3.0
        kn = cust.knowledge_level - 2.0
        debt = cust.debt_ratio - 0.3
        age = cust.age.astype(np.float64)
        a = (age - 45.0) / 15.0
        senior = age >= 60
        young = age < 35
        unconf = ~cust.profile_confirmed

        appetite = 1.35 * rt + 0.55 * le + 0.35 * la + 0.15 * inc + 0.8 * kn - 2.0 * debt - 0.35 * a
        v = _ALPHA[None, :] + _RISKINESS[None, :] * (1.6 * appetite)[:, None]
        v[:, 0] += 0.12 * a**2 + 0.6 * unconf + 0.8 * (debt > 0.3)  # DSR above 0.6
        v[:, 1] += 0.3 * a + 0.4 * (age >= 70)
        v[:, 2] += 0.45 * la + 0.5 * senior - 0.2 * rt
        v[:, 3] += 0.2 * inc + 0.45 * ((age >= 60) & (age < 70))
        v[:, 4] += 0.45 * ((age >= 50) & (age < 60))
        v[:, 5] += -0.2 * young + 0.4 * ((age >= 35) & (age < 50))
        v[:, 6] += 0.5 * young - 0.3 * (age >= 65)
        v[:, 7] += 0.55 * (senior & (la > 0.3)) + 0.6 * kn

        r = self.regime(day)
        if r:
            # rate hikes and the H-index ELS losses: levels move, and so do the slopes:
            # leverage now weighs on investing, the young pile into global equity, seniors
            # who bought ELS for the coupon move to principal-protected ELB.
            v += r * _REGIME_SHIFT[None, :]
            v += r * _RISKINESS[None, :] * (-2.6 * debt - 0.6 * a)[:, None]
            v[:, 6] += r * (1.4 * young + 0.5 * rt)
            v[:, 7] -= r * (1.4 * (senior & (la > 0.3)) + 0.5 * kn)
            v[:, 2] += r * (0.9 * senior + 0.5 * la)
        if c.seasonal_amplitude:
            v += c.seasonal_amplitude * np.sin(2 * np.pi * (day + 30) / 364.0) * _SEASON[None, :]
        ev = c.segment_event
        if ev is not None and ev.active(day):
            seg = (cust.region == REGIONS.index(ev.region)) & (age >= ev.min_age) & (age <= ev.max_age)
            v[seg, PRODUCT_INDEX[ev.product]] += ev.utility_shift
        return v

    def choice_proba(self, cust: Customers, day: int) -> np.ndarray:
        """True probability that each customer would accept each product (softmax of the
        utilities): the reference teacher's distribution."""
        v = self.utilities(cust, day)
        v -= v.max(axis=1, keepdims=True)
        e = np.exp(v)
        return e / e.sum(axis=1, keepdims=True)

    def sample_choice(self, cust: Customers, day: int, rng: np.random.Generator) -> np.ndarray:
        g = rng.gumbel(size=(len(cust), N_PRODUCTS))
        return np.argmax(self.utilities(cust, day) + g, axis=1).astype(np.int8)

    def sample_label_delay(self, label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Days until an outcome is known. Deposits settle in 1-2 days; investment products
        only after the 7-day cooling-off (청약철회, KFCPA Art. 46) plus processing: 7-14."""
        u = rng.random(len(label))
        dep = 1 + (u < 0.3)
        inv = 7 + np.floor(u * (self.config.max_label_delay - 6)).astype(np.int64)
        return np.where(label == DEPOSIT, dep, inv).astype(np.int32)

    # ---- labelled data --------------------------------------------------------------------
    def outcomes(self, day: int) -> "LabelledBatch":
        """The labelled outcomes of ``day``: fresh customers the bank advised that day, the
        product each accepted, and the day that outcome became known."""
        hit = self._outcome_cache.get(day)
        if hit is not None:
            return hit
        n = self.config.outcomes_per_day
        rng = keyed_rng(self.seed, "outcomes", day)
        cust = generate_customers(rng, n)
        cust = replace(cust, subject_key=_subject_keys(self.seed, f"outcomes/{day}", np.arange(n, dtype=np.uint64)))
        label = self.sample_choice(cust, day, rng)
        arrival = day + self.sample_label_delay(label, rng)
        out = LabelledBatch(cust, np.full(n, day, dtype=np.int32), label, arrival.astype(np.int32))
        if len(self._outcome_cache) >= 64:  # bounded: windows move forward
            self._outcome_cache.pop(next(iter(self._outcome_cache)))
        self._outcome_cache[day] = out
        return out

    def training_set(self, as_of_day: int, window_days: int = 7, lag_days: int = 14) -> "LabelledBatch":
        """What a retrain on ``as_of_day`` can see: outcomes of days
        ``[as_of - lag - window, as_of - lag)`` whose label has arrived by ``as_of_day``."""
        lo, hi = as_of_day - lag_days - window_days, as_of_day - lag_days
        batch = LabelledBatch.concat([self.outcomes(d) for d in range(lo, hi)])
        return batch.take(batch.label_arrival_day <= as_of_day)

    def holdout(self, epoch: int = 0) -> "Holdout":
        """The frozen holdout of an epoch: ``holdout_size`` fresh customers drawn on
        ``holdout_days[epoch]``, their accepted products, and the teacher's probabilities."""
        day = self.config.holdout_days[epoch]
        return _holdout(self, epoch, day)

    # ---- the request stream ---------------------------------------------------------------
    def population(self, size: int) -> Customers:
        return customers_stream(self.seed, "population", 0, size)

    def campaign_customers(self) -> Customers:
        """The campaign's pool: the young customers of their own stream (empty without one)."""
        c = self.config.campaign
        if c is None:
            return generate_customers(np.random.default_rng(0), 0)
        drawn = customers_stream(self.seed, "campaign", 0, 4 * c.pool_size)
        return drawn.take(np.flatnonzero(drawn.age <= c.max_age)[:c.pool_size])

    def customer_base(self, n_requests: int) -> Customers:
        """Everyone who may ask for advice: the population and the campaign's pool."""
        return Customers.concat([self.population(self.default_population_size(n_requests)),
                                 self.campaign_customers()])

    @staticmethod
    def default_population_size(n_requests: int) -> int:
        return int(min(max(2_000, n_requests // 3), 300_000))

    def day_counts(self, n_requests: int, days: int = YEAR_DAYS) -> np.ndarray:
        """Requests per day: weekdays 1, Saturday 0.45, Sunday 0.35, holidays 0.3, a busier
        month end; largest-remainder rounding so the counts sum to ``n_requests``."""
        hol = {(_dt.date.fromisoformat(h) - START_DATE).days for h in _HOLIDAYS_2025}
        w = np.empty(days)
        for d in range(days):
            dt = day_to_date(d)
            wd = dt.weekday()
            w[d] = 1.0 if wd < 5 else (0.45 if wd == 5 else 0.35)
            if d in hol:
                w[d] = 0.3
            if dt.day >= 25:
                w[d] *= 1.15
        q = w / w.sum() * n_requests
        base = np.floor(q).astype(np.int64)
        rem = n_requests - base.sum()
        order = np.lexsort((np.arange(days), -(q - base)))
        base[order[:rem]] += 1
        return base

    def iter_requests(
        self,
        n_requests: int,
        chunk_size: int | None = None,
        population_size: int | None = None,
        days: int = YEAR_DAYS,
    ) -> Iterator["RequestBatch"]:
        """Stream the year's requests in time order. ``chunk_size=None`` yields one batch per
        day (what a per-day batch scorer wants); an integer yields batches of exactly that
        many (the last may be shorter), cutting across days. Memory is bounded by the
        population plus one day plus one chunk; the concatenation of the batches does not
        depend on ``chunk_size``."""
        pop_n = population_size or self.default_population_size(n_requests)
        pop = self.population(pop_n)
        campaign = self.campaign_customers() if self.config.campaign is not None else None
        cdf = np.cumsum(pop.activity)
        cdf /= cdf[-1]
        counts = self.day_counts(n_requests, days)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        pending: list[RequestBatch] = []
        pending_n = 0
        for d in range(days):
            n = int(counts[d])
            if n == 0:
                continue
            rb = self._requests_of_day(d, n, int(offsets[d]), pop, cdf, campaign)
            if chunk_size is None:
                yield rb
                continue
            pending.append(rb)
            pending_n += n
            while pending_n >= chunk_size:
                allb = RequestBatch.concat(pending)
                yield allb.take(slice(0, chunk_size))
                rest = allb.take(slice(chunk_size, None))
                pending, pending_n = ([rest] if len(rest) else []), len(rest)
        if pending_n:
            yield RequestBatch.concat(pending)

    def _requests_of_day(self, day: int, n: int, first_index: int, pop: Customers, cdf: np.ndarray,
                         campaign: Customers | None = None) -> "RequestBatch":
        rng = keyed_rng(self.seed, "requests", day)
        u = rng.random(n)
        idx = np.searchsorted(cdf, u, side="right").clip(0, len(pop) - 1)
        # 09:00-22:00 KST, busier at lunch and in the evening
        hours = np.sort(9.0 + 13.0 * rng.beta(1.6, 1.4, size=n))
        ts = day_start_us(day) + np.round(hours * 3600e6).astype(np.int64)
        cust = pop.take(idx)
        c = self.config.campaign
        if campaign is not None and c is not None and c.active(day) and len(campaign):
            # its own generator, so the days outside the campaign draw exactly as without one
            crng = keyed_rng(self.seed, "campaign", day)
            from_campaign = crng.random(n) < c.share
            picked = crng.integers(0, len(campaign), n)
            cust = Customers.concat([cust, campaign.take(picked)]).take(
                np.where(from_campaign, np.arange(n) + n, np.arange(n)))
            idx = np.where(from_campaign, len(pop) + picked, idx)  # index into the customer base
        label = self.sample_choice(cust, day, rng)
        arrival = day + self.sample_label_delay(label, rng)
        return RequestBatch(
            index=np.arange(first_index, first_index + n, dtype=np.int64),
            day=np.full(n, day, dtype=np.int32),
            ts_us=ts,
            customer_index=idx.astype(np.int64),
            customers=cust,
            label=label,
            label_arrival_day=arrival.astype(np.int32),
        )


@dataclass(frozen=True, eq=False)
class LabelledBatch:
    customers: Customers
    day: np.ndarray
    label: np.ndarray  # product index accepted
    label_arrival_day: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    def take(self, idx) -> "LabelledBatch":
        return LabelledBatch(self.customers.take(idx), self.day[idx], self.label[idx], self.label_arrival_day[idx])

    @staticmethod
    def concat(parts: Sequence["LabelledBatch"]) -> "LabelledBatch":
        return LabelledBatch(
            Customers.concat([p.customers for p in parts]),
            np.concatenate([p.day for p in parts]),
            np.concatenate([p.label for p in parts]),
            np.concatenate([p.label_arrival_day for p in parts]),
        )


@dataclass(frozen=True, eq=False)
class Holdout:
    epoch: int
    day: int
    customers: Customers
    labels: np.ndarray  # product index accepted
    teacher_proba: np.ndarray  # n x K, the reference teacher (the world's true probabilities)

    def __len__(self) -> int:
        return len(self.labels)


@lru_cache(maxsize=8)
def _holdout_cached(seed: int, cfg: WorldConfig, epoch: int, day: int) -> Holdout:
    w = World(cfg)
    n = cfg.holdout_size
    rng = keyed_rng(seed, "holdout", epoch)
    cust = generate_customers(rng, n)
    cust = replace(cust, subject_key=_subject_keys(seed, f"holdout/{epoch}", np.arange(n, dtype=np.uint64)))
    labels = w.sample_choice(cust, day, rng)
    return Holdout(epoch, day, cust, labels, w.choice_proba(cust, day))


def _holdout(world: World, epoch: int, day: int) -> Holdout:
    return _holdout_cached(world.seed, world.config, epoch, day)


@dataclass(frozen=True, eq=False)
class RequestBatch:
    index: np.ndarray  # global request number, 0-based, in time order
    day: np.ndarray
    ts_us: np.ndarray  # UTC microseconds since the Unix epoch
    customer_index: np.ndarray  # into the population
    customers: Customers
    label: np.ndarray  # the product this customer would accept (ground truth)
    label_arrival_day: np.ndarray  # when that outcome becomes known (late-arriving)

    def __len__(self) -> int:
        return len(self.index)

    def take(self, idx) -> "RequestBatch":
        return RequestBatch(
            self.index[idx], self.day[idx], self.ts_us[idx], self.customer_index[idx],
            self.customers.take(idx), self.label[idx], self.label_arrival_day[idx],
        )

    @staticmethod
    def concat(parts: Sequence["RequestBatch"]) -> "RequestBatch":
        if len(parts) == 1:
            return parts[0]
        return RequestBatch(
            np.concatenate([p.index for p in parts]),
            np.concatenate([p.day for p in parts]),
            np.concatenate([p.ts_us for p in parts]),
            np.concatenate([p.customer_index for p in parts]),
            Customers.concat([p.customers for p in parts]),
            np.concatenate([p.label for p in parts]),
            np.concatenate([p.label_arrival_day for p in parts]),
        )

    def equals(self, other: "RequestBatch") -> bool:
        return (
            all(np.array_equal(getattr(self, n), getattr(other, n))
                for n in ("index", "day", "ts_us", "customer_index", "label", "label_arrival_day"))
            and self.customers.equals(other.customers)
        )

    def request_ids(self) -> list[str]:
        return self.request_ids_of(self.index)

    @staticmethod
    def request_ids_of(index: np.ndarray) -> list[str]:
        """Request ids of global request numbers (``RequestBatch.index``)."""
        return [f"req-{i:010d}" for i in np.asarray(index).tolist()]

    def subject_ids(self) -> list[str]:
        return self.customers.subject_ids()


# --------------------------------------------------------------------------------------------
# Feature schemas
# --------------------------------------------------------------------------------------------


def _band_name(b: str) -> str:
    return b.replace("-", "_").replace("+", "_plus")


def _region_name(r: str) -> str:
    return r.lower().replace("-", "_")


_V1_NAMES = (
    "age", "risk_tolerance", "invest_experience_years", "log10_assets_krw", "income_tier",
    "profile_confirmed",
)
_V2_NAMES = (
    ("age", "risk_tolerance", "log1p_invest_experience", "log10_assets_krw", "income_tier",
     "profile_confirmed", "knowledge_level", "debt_ratio")
    + tuple(f"age_band_{_band_name(b)}" for b in AGE_BANDS)
    + tuple(f"region_{_region_name(r)}" for r in REGIONS)
    + tuple(f"senior_x_region_{_region_name(r)}" for r in REGIONS)
)


_INDICATOR_PREFIXES = ("age_band_", "region_", "senior_x_region_")


def canonical_names_bytes(names: Sequence[str]) -> bytes:
    """The canonical feature-name list: a JSON array of the names in model-input order,
    UTF-8, no whitespace (identical to RFC 8785 output for these ASCII names)."""
    return json.dumps(list(names), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def schema_digest(names: Sequence[str]) -> str:
    """SHA-256 hex of the canonical feature-name list."""
    return hashlib.sha256(canonical_names_bytes(names)).hexdigest()


# Dataset names for data_access entries.
PROFILE_DATASET = "retail.suitability_profiles"  # one row per customer, read at serving time
OUTCOMES_DATASET = "retail.advice_outcomes"  # labelled outcomes, read by a retrain
HOLDOUT_DATASET = "mrm.frozen_holdout"  # read by the promotion gate's evaluation


@dataclass(frozen=True)
class FeatureSchema:
    version: str
    names: tuple[str, ...]
    source_columns: tuple[str, ...]  # profile columns the features are computed from

    @property
    def dimension(self) -> int:
        return len(self.names)

    @property
    def digest(self) -> str:
        return schema_digest(self.names)

    @property
    def indicator_index(self) -> tuple[int, ...]:
        """Columns that are one-hot 0/1 indicators (not standardised by the models)."""
        return tuple(i for i, n in enumerate(self.names) if n.startswith(_INDICATOR_PREFIXES))

    @property
    def numeric_index(self) -> tuple[int, ...]:
        ind = set(self.indicator_index)
        return tuple(i for i in range(self.dimension) if i not in ind)

    def featurize(self, cust: Customers) -> np.ndarray:
        """Raw (unscaled) model inputs, float64, shape (n, dimension), columns in ``names``."""
        return _FEATURIZERS[self.version](cust)


def _feat_v1(c: Customers) -> np.ndarray:
    return np.column_stack([
        c.age.astype(np.float64),
        c.risk_tolerance.astype(np.float64),
        c.invest_experience_years.astype(np.float64),
        np.log10(np.maximum(c.assets_krw, 1.0)),
        c.income_tier.astype(np.float64),
        c.profile_confirmed.astype(np.float64),
    ])


def _feat_v2(c: Customers) -> np.ndarray:
    n = len(c)
    out = np.zeros((n, len(_V2_NAMES)))
    out[:, 0] = c.age
    out[:, 1] = c.risk_tolerance
    out[:, 2] = np.log1p(c.invest_experience_years)
    out[:, 3] = np.log10(np.maximum(c.assets_krw, 1.0))
    out[:, 4] = c.income_tier
    out[:, 5] = c.profile_confirmed
    out[:, 6] = c.knowledge_level
    out[:, 7] = c.debt_ratio
    rows = np.arange(n)
    out[rows, 8 + c.age_band.astype(np.int64)] = 1.0
    out[rows, 8 + len(AGE_BANDS) + c.region.astype(np.int64)] = 1.0
    senior = c.age >= 60
    out[rows[senior], 8 + len(AGE_BANDS) + len(REGIONS) + c.region[senior].astype(np.int64)] = 1.0
    return out


_FEATURIZERS = {"fs-v1": _feat_v1, "fs-v2": _feat_v2}
_V1_SOURCES = ("age", "risk_tolerance", "invest_experience_years", "assets_krw", "income_tier", "profile_confirmed")
SCHEMA_V1 = FeatureSchema("fs-v1", _V1_NAMES, _V1_SOURCES)
SCHEMA_V2 = FeatureSchema("fs-v2", _V2_NAMES, _V1_SOURCES + ("knowledge_level", "debt_ratio", "region"))
SCHEMAS: Mapping[str, FeatureSchema] = {"fs-v1": SCHEMA_V1, "fs-v2": SCHEMA_V2, "v1": SCHEMA_V1, "v2": SCHEMA_V2}


def get_schema(version: str) -> FeatureSchema:
    return SCHEMAS[version]


def schema_change(old: FeatureSchema | None, new: FeatureSchema) -> dict:
    """The body of a dimension_change entry for switching the feature pipeline old -> new
    (``component`` and ``reason`` are the caller's). Lists keep schema order."""
    old_names = old.names if old else ()
    return {
        "old_schema_digest": old.digest if old else None,
        "new_schema_digest": new.digest,
        "old_dimension": old.dimension if old else None,
        "new_dimension": new.dimension,
        "features_added": [n for n in new.names if n not in set(old_names)],
        "features_removed": [n for n in old_names if n not in set(new.names)],
    }


# --------------------------------------------------------------------------------------------
# Input digest
# --------------------------------------------------------------------------------------------

INPUT_DIGEST_DOMAIN = b"mrm-ledger/input-digest/v1\x00"


def _digest_prefix(names: Sequence[str], dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    dt = np.dtype(dtype).newbyteorder("<") if np.dtype(dtype).byteorder not in ("|",) else np.dtype(dtype)
    parts = [INPUT_DIGEST_DOMAIN, struct.pack(">I", len(names))]
    for n in names:
        b = n.encode("utf-8")
        parts += [struct.pack(">I", len(b)), b]
    ds = dt.str.encode("ascii")
    parts += [struct.pack(">I", len(ds)), ds, struct.pack(">I", len(shape))]
    parts += [struct.pack(">Q", int(s)) for s in shape]
    return b"".join(parts)


def _le(values: np.ndarray) -> np.ndarray:
    dt = values.dtype
    if dt.byteorder == ">" or (dt.byteorder == "=" and not np.little_endian):
        values = values.astype(dt.newbyteorder("<"))
    return np.ascontiguousarray(values)


def input_digest(values, names: Sequence[str]) -> str:
    """SHA-256 hex identifying one model input.

    Bytes hashed, in order:
      1. ``b"mrm-ledger/input-digest/v1\\x00"`` (domain separation);
      2. ``u32be(len(names))``, then per name ``u32be(len(utf8)) || utf8``;
      3. ``u32be(len(dtype_str)) || dtype_str`` with the numpy dtype string in explicit
         little-endian form, e.g. ``b"<f8"``;
      4. ``u32be(ndim)``, then ``u64be(dim)`` per dimension;
      5. the values' raw bytes, C order, little-endian (exact IEEE-754 bits: -0.0 != 0.0).
    ``names`` label the last axis, so its length must equal ``shape[-1]``."""
    arr = _le(np.asarray(values))
    if arr.ndim == 0 or arr.shape[-1] != len(names):
        raise ValueError(f"{len(names)} names for values of shape {arr.shape}")
    h = hashlib.sha256(_digest_prefix(names, arr.dtype, arr.shape))
    h.update(arr.tobytes(order="C"))
    return h.hexdigest()


def input_digests(matrix: np.ndarray, names: Sequence[str]) -> list[str]:
    """``input_digest(matrix[i], names)`` for every row, computed with one shared prefix."""
    m = _le(np.asarray(matrix))
    if m.ndim != 2 or m.shape[1] != len(names):
        raise ValueError(f"{len(names)} names for a matrix of shape {m.shape}")
    base = hashlib.sha256(_digest_prefix(names, m.dtype, (m.shape[1],)))
    buf = m.tobytes(order="C")
    step = m.shape[1] * m.dtype.itemsize
    out = []
    for i in range(m.shape[0]):
        h = base.copy()
        h.update(buf[i * step:(i + 1) * step])
        out.append(h.hexdigest())
    return out

