"""The suitability rule in the spirit of KFCPA Art. 17 (적합성 원칙), as a pure function.

Before recommending, the seller learns the customer's age, assets, investment experience and
understanding (and, for leverage, repayment ability), has the captured profile confirmed by
the customer, and never recommends a product unsuitable for that profile.

The rule (this demo's documented convention)
--------------------------------------------
1. The questionnaire's risk tolerance (1..5) gives a *questionnaire type*, one of the five
   Korean investor types: 1 stable 안정형, 2 conservative 안정추구형, 3 neutral 위험중립형,
   4 active 적극투자형, 5 aggressive 공격투자형.
2. Each other criterion caps the type (5 = no cap):

   ==================  =========================================  ====
   criterion           condition                                  cap
   ==================  =========================================  ====
   age_cap             age >= 80 (super-elderly, 초고령)            2
                       age >= 65 (elderly investor, 고령투자자)      3
   experience_cap      no investment experience                   3
                       less than 3 years                           4
   assets_cap          financial assets < 3 million KRW           2
                       financial assets < 10 million KRW          4
   debt_cap            debt service ratio >= 0.70                 2
                       debt service ratio >= 0.40 (DSR 40 %)      4
   knowledge_cap       low understanding (level 1)                3
   ==================  =========================================  ====

   The *profile type* is the minimum of the questionnaire type and every cap; the criterion
   that sets it is the *binding* one (ties go to the earlier row of the table).
3. The profile type gives the riskiest product risk grade allowed (grades: 1 = very high risk
   ... 6 = very low risk): stable 6, conservative 5, neutral 3, active 2, aggressive 1.
   A product is suitable when ``product.risk_grade >= allowed grade``.
4. An unconfirmed profile (the customer has not confirmed what was captured) may only
   receive the safest products: allowed grade 6, whatever the profile says.
5. Verdicts: ``pass`` when the proposal is suitable. Otherwise ``modify``: the proposal is
   replaced by the allowed product the model scores highest (without scores: the riskiest
   allowed product, then the first in catalogue order) -- unless the policy is ``block`` or
   that replacement's score is below ``min_replacement_score`` (nothing suitable the customer
   is likely to want), in which case ``block`` and nothing is served.

Rule ids used in reasons: ``KFCPA17-GRADE`` (product riskier than the profile allows) and
``KFCPA17-UNCONFIRMED`` (profile not confirmed by the customer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .world import (
    PRODUCT_GRADES,
    PRODUCT_IDS,
    PRODUCT_INDEX,
    PRODUCTS,
    PROFILE_TYPES,
    PROFILE_TYPES_KO,
    CustomerProfile,
    Customers,
)

GATE = "kfcpa17_suitability"
RULE_GRADE = "KFCPA17-GRADE"
RULE_UNCONFIRMED = "KFCPA17-UNCONFIRMED"

# profile type (1..5) -> riskiest risk grade allowed (1 very high .. 6 very low)
ALLOWED_GRADE_BY_TYPE: Mapping[int, int] = {1: 6, 2: 5, 3: 3, 4: 2, 5: 1}
UNCONFIRMED_ALLOWED_GRADE = 6
DEFAULT_MIN_REPLACEMENT_SCORE = 0.05

CAP_CRITERIA: tuple[str, ...] = ("age_cap", "experience_cap", "assets_cap", "debt_cap", "knowledge_cap")
# Keys of the guardrail entry's ``criteria`` map, in this order.
CRITERIA: tuple[str, ...] = (
    "profile_confirmed",  # 1 confirmed / 0 not
    "questionnaire_type",  # 1..5
    *CAP_CRITERIA,  # 1..5 each, 5 = no cap
    "profile_type",  # 1..5
    "allowed_risk_grade",  # 1..6, riskiest grade allowed (6 if unconfirmed)
    "product_risk_grade",  # 1..6, the model's proposal
    "grade_margin",  # product grade - allowed grade; negative = unsuitable
    "suitable",  # 1 / 0
    "replacement_score",  # model score of the served replacement; -1 when none
)

VERDICT_CODES = ("pass", "modify", "block")


def _age_cap(age: int) -> int:
    return 2 if age >= 80 else 3 if age >= 65 else 5


def _experience_cap(years: int) -> int:
    return 3 if years <= 0 else 4 if years < 3 else 5


def _assets_cap(assets: float) -> int:
    return 2 if assets < 3_000_000 else 4 if assets < 10_000_000 else 5


def _debt_cap(dsr: float) -> int:
    return 2 if dsr >= 0.70 else 4 if dsr >= 0.40 else 5


def _knowledge_cap(level: int) -> int:
    return 3 if level <= 1 else 5


_CAP_TEXT = {
    "questionnaire_type": "questionnaire risk tolerance {v}",
    "age_cap": "age {v}",
    "experience_cap": "investment experience {v} years",
    "assets_cap": "financial assets {v:,.0f} KRW",
    "debt_cap": "debt service ratio {v:.2f}",
    "knowledge_cap": "product understanding level {v}",
}


@dataclass(frozen=True)
class SuitabilityResult:
    verdict: str  # pass | modify | block
    criteria: dict[str, float]
    reason: str | None  # None when the verdict is pass
    rule: str | None  # KFCPA17-GRADE / KFCPA17-UNCONFIRMED / None
    binding: str  # criterion that set the allowed grade
    original_output: str  # product id the model proposed
    final_output: str | None  # product id served; None when blocked
    allowed_products: tuple[str, ...]


def _profile_values(p: CustomerProfile) -> dict:
    return {
        "questionnaire_type": p.risk_tolerance,
        "age_cap": p.age,
        "experience_cap": p.invest_experience_years,
        "assets_cap": p.assets_krw,
        "debt_cap": p.debt_ratio,
        "knowledge_cap": p.knowledge_level,
    }


def assess_profile(p: CustomerProfile) -> tuple[dict[str, int], int, str, int]:
    """Caps, profile type, binding criterion and allowed grade for one profile."""
    types = {
        "questionnaire_type": int(min(max(p.risk_tolerance, 1), 5)),
        "age_cap": _age_cap(p.age),
        "experience_cap": _experience_cap(p.invest_experience_years),
        "assets_cap": _assets_cap(p.assets_krw),
        "debt_cap": _debt_cap(p.debt_ratio),
        "knowledge_cap": _knowledge_cap(p.knowledge_level),
    }
    binding = min(types, key=lambda k: types[k])  # first minimum in table order
    ptype = types[binding]
    if not p.profile_confirmed:
        return types, ptype, "profile_confirmed", UNCONFIRMED_ALLOWED_GRADE
    return types, ptype, binding, ALLOWED_GRADE_BY_TYPE[ptype]


def allowed_products(p: CustomerProfile) -> tuple[str, ...]:
    grade = assess_profile(p)[3]
    return tuple(pr.id for pr in PRODUCTS if pr.risk_grade >= grade)


def check_suitability(
    profile: CustomerProfile | Mapping,
    proposed: str,
    scores: Mapping[str, float] | None = None,
    *,
    policy: str = "modify",
    min_replacement_score: float = DEFAULT_MIN_REPLACEMENT_SCORE,
) -> SuitabilityResult:
    """Check one proposed product against one captured profile."""
    if policy not in ("modify", "block"):
        raise ValueError("policy is 'modify' or 'block'")
    p = profile if isinstance(profile, CustomerProfile) else CustomerProfile(**profile)
    prod = PRODUCTS[PRODUCT_INDEX[proposed]]
    types, ptype, binding, allowed = assess_profile(p)
    allowed_ids = tuple(pr.id for pr in PRODUCTS if pr.risk_grade >= allowed)
    suitable = prod.risk_grade >= allowed

    verdict, final, rule, reason, repl_score = "pass", proposed, None, None, -1.0
    if not suitable:
        if scores is not None:
            best = max(allowed_ids, key=lambda i: (scores[i], -PRODUCT_INDEX[i]))
            repl_score = float(scores[best])
        else:
            best = min(allowed_ids, key=lambda i: (PRODUCTS[PRODUCT_INDEX[i]].risk_grade, PRODUCT_INDEX[i]))
        if policy == "block" or (scores is not None and repl_score < min_replacement_score):
            verdict, final = "block", None
        else:
            verdict, final = "modify", best
        if not p.profile_confirmed:
            rule = RULE_UNCONFIRMED
            why = (f"the customer has not confirmed the captured profile, so only risk grade "
                   f"{UNCONFIRMED_ALLOWED_GRADE} ({PRODUCTS[0].name.lower()}-class) products may be recommended")
        else:
            rule = RULE_GRADE
            why = (f"profile type {ptype} {PROFILE_TYPES[ptype - 1]} ({PROFILE_TYPES_KO[ptype - 1]}) allows "
                   f"risk grade {allowed} or safer; binding criterion {binding}: "
                   + _CAP_TEXT[binding].format(v=_profile_values(p)[binding]))
        reason = (f"KFCPA Art. 17 suitability [{rule}]: {prod.id} (risk grade {prod.risk_grade}) is unsuitable; "
                  f"{why}; ")
        reason += (f"replaced by {final} (risk grade {PRODUCTS[PRODUCT_INDEX[final]].risk_grade})"
                   if verdict == "modify" else
                   "blocked, nothing recommended" + (
                       f" (best suitable product {best} scored {repl_score:.3f} < {min_replacement_score})"
                       if policy == "modify" else " (policy: block)"))

    criteria = {
        "profile_confirmed": 1.0 if p.profile_confirmed else 0.0,
        **{k: float(v) for k, v in types.items()},
        "profile_type": float(ptype),
        "allowed_risk_grade": float(allowed),
        "product_risk_grade": float(prod.risk_grade),
        "grade_margin": float(prod.risk_grade - allowed),
        "suitable": 1.0 if suitable else 0.0,
        "replacement_score": repl_score if verdict == "modify" else -1.0,
    }
    return SuitabilityResult(verdict, criteria, reason, rule, binding, proposed, final, allowed_ids)


# --------------------------------------------------------------------------------------------
# Vectorised form (same rule, for per-day batches)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SuitabilityBatch:
    """Verdicts for a batch; ``result(i)`` materialises row ``i`` as a SuitabilityResult."""

    customers: Customers
    proposed: np.ndarray  # product index
    scores: np.ndarray | None  # n x K
    policy: str
    min_replacement_score: float
    verdict: np.ndarray  # 0 pass, 1 modify, 2 block
    final: np.ndarray  # product index, -1 when blocked
    allowed_grade: np.ndarray
    profile_type: np.ndarray
    criteria_matrix: np.ndarray  # n x len(CRITERIA), float64

    def __len__(self) -> int:
        return len(self.verdict)

    def verdicts(self) -> list[str]:
        return [VERDICT_CODES[v] for v in self.verdict.tolist()]

    def criteria(self, i: int) -> dict[str, float]:
        return dict(zip(CRITERIA, self.criteria_matrix[i].tolist()))

    def result(self, i: int) -> SuitabilityResult:
        """Row ``i`` through the scalar rule (gives the reason text; equal to the batch)."""
        sc = None if self.scores is None else dict(zip(PRODUCT_IDS, self.scores[i].tolist()))
        return check_suitability(
            self.customers.row(i), PRODUCT_IDS[int(self.proposed[i])], sc,
            policy=self.policy, min_replacement_score=self.min_replacement_score,
        )


def check_suitability_batch(
    customers: Customers,
    proposed: np.ndarray,
    scores: np.ndarray | None = None,
    *,
    policy: str = "modify",
    min_replacement_score: float = DEFAULT_MIN_REPLACEMENT_SCORE,
) -> SuitabilityBatch:
    c = customers
    n = len(c)
    proposed = np.asarray(proposed, dtype=np.int64)
    age, yrs, assets, dsr, kn = c.age, c.invest_experience_years, c.assets_krw, c.debt_ratio, c.knowledge_level
    q = np.clip(c.risk_tolerance, 1, 5).astype(np.int64)
    caps = np.column_stack([
        q,
        np.where(age >= 80, 2, np.where(age >= 65, 3, 5)),
        np.where(yrs <= 0, 3, np.where(yrs < 3, 4, 5)),
        np.where(assets < 3_000_000, 2, np.where(assets < 10_000_000, 4, 5)),
        np.where(dsr >= 0.70, 2, np.where(dsr >= 0.40, 4, 5)),
        np.where(kn <= 1, 3, 5),
    ]).astype(np.int64)
    ptype = caps.min(axis=1)
    lut = np.array([0] + [ALLOWED_GRADE_BY_TYPE[t] for t in range(1, 6)])
    allowed = np.where(c.profile_confirmed, lut[ptype], UNCONFIRMED_ALLOWED_GRADE)
    pgrade = PRODUCT_GRADES[proposed]
    suitable = pgrade >= allowed
    allowed_mask = PRODUCT_GRADES[None, :] >= allowed[:, None]  # n x K

    if scores is not None:
        masked = np.where(allowed_mask, scores, -np.inf)
        best = np.argmax(masked, axis=1)  # first max = lowest index, as in the scalar rule
        best_score = masked[np.arange(n), best]
    else:
        key = np.where(allowed_mask, PRODUCT_GRADES[None, :], 99)
        best = np.argmin(key, axis=1)
        best_score = np.full(n, np.inf)
    block = ~suitable & ((policy == "block") | (best_score < min_replacement_score))
    verdict = np.where(suitable, 0, np.where(block, 2, 1)).astype(np.int8)
    final = np.where(suitable, proposed, np.where(block, -1, best))
    repl = np.where(verdict == 1, np.where(np.isfinite(best_score), best_score, -1.0), -1.0)

    crit = np.column_stack([
        c.profile_confirmed.astype(np.float64),
        caps.astype(np.float64),
        ptype.astype(np.float64),
        allowed.astype(np.float64),
        pgrade.astype(np.float64),
        (pgrade - allowed).astype(np.float64),
        suitable.astype(np.float64),
        repl.astype(np.float64),
    ])
    return SuitabilityBatch(c, proposed, scores, policy, min_replacement_score, verdict,
                            final.astype(np.int64), allowed.astype(np.int64), ptype, crit)


def suitable_mask(customers: Customers) -> np.ndarray:
    """n x K boolean: which products each customer may be recommended."""
    b = check_suitability_batch(customers, np.zeros(len(customers), dtype=np.int64))
    return PRODUCT_GRADES[None, :] >= b.allowed_grade[:, None]


__all__: Sequence[str] = (
    "GATE", "RULE_GRADE", "RULE_UNCONFIRMED", "ALLOWED_GRADE_BY_TYPE", "CRITERIA",
    "SuitabilityResult", "SuitabilityBatch", "check_suitability", "check_suitability_batch",
    "assess_profile", "allowed_products", "suitable_mask",
)
