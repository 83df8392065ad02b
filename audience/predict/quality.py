"""How good a model is, against a baseline, graded A/B/C by the modelled system's rules.

- Churn (transactional and subscription): A when the model is right for at least half the
  customers and its accuracy is more than 10% above the baseline's; B when above the baseline
  by up to 10%; C otherwise.
- Lifetime value: the share of actual high-value customers the model finds among its own top
  share, against the baseline (past spend). A: 5% or more found than the baseline; B: 0-5%
  more; C: fewer.
- Product recommendations: success at K (a customer bought at least one recommended product)
  against recommending the most popular products. A: 10% or more better; B: better; C: not.
- Sentiment (when ratings are given): agreement with the ratings against always answering
  the most common label; graded like churn.
"Above by 10%" is relative: a model at 0.88 against a baseline at 0.80 is 10% above it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Quality:
    model: str  # the configured model's name
    kind: str  # transactional_churn, lifetime_value, ...
    metric: str
    value: float
    baseline_name: str
    baseline: float
    grade: str
    evaluated_on: int  # customers (or texts) the numbers come from
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def lift(self) -> float | None:
        return None if self.baseline <= 0 else self.value / self.baseline - 1


def lift(value: float, baseline: float) -> float:
    """Relative improvement over the baseline (inf when the baseline is 0 and value is not)."""
    if baseline <= 0:
        return float("inf") if value > 0 else 0.0
    return round(value / baseline - 1, 9)  # 0.22 / 0.20 is 10% better, not 9.99...%


def churn_grade(accuracy: float, baseline_accuracy: float) -> str:
    gain = lift(accuracy, baseline_accuracy)
    if accuracy >= 0.5 and gain > 0.10:
        return "A"
    if gain > 0:
        return "B"
    return "C"


def lifetime_value_grade(found: float, baseline_found: float) -> str:
    gain = lift(found, baseline_found)
    if gain >= 0.05:
        return "A"
    if gain >= 0:
        return "B"
    return "C"


def recommendation_grade(success: float, baseline_success: float) -> str:
    gain = lift(success, baseline_success)
    if gain >= 0.10:
        return "A"
    if gain > 0:
        return "B"
    return "C"
