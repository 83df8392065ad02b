"""The `predictions:` section of the project file: one entry per model, by `model` kind.

Each model reads one activity (by name or type) and publishes rows to the Prediction table
plus profile fields `<name>_<output>` that segments, the API and exports can use.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from audience.analytics.config import IDENTIFIER, Strict


class _Model(Strict):
    name: str = Field(
        pattern=IDENTIFIER,
        description="Names the model in the Prediction table and prefixes its profile fields.",
    )
    description: str | None = None
    activity: str = Field(description="The activity (by name or type) the model learns from.")


class TransactionalChurn(_Model):
    """Churn = no purchase within `window_days`. Publishes `<name>_score` (0-1),
    `<name>_is_churn` and the top drivers of each customer's score."""

    model: Literal["transactional_churn"]
    amount: str = Field("amount", description="The activity field holding the purchase value.")
    window_days: int = Field(90, ge=7, le=730, description="Days without purchase that is churn.")
    threshold: float = Field(0.5, gt=0, lt=1, description="Scores from this are IsChurn.")


class SubscriptionChurn(_Model):
    """Churn = an active subscription ends within `days_ahead` and is not followed by another.
    Reads the activity fields `start`, `end` (empty while active), `amount` and optionally
    `auto_renew`."""

    model: Literal["subscription_churn"]
    days_ahead: int = Field(90, ge=7, le=730)
    threshold: float = Field(0.5, gt=0, lt=1)


class LifetimeValue(_Model):
    """Spend expected over the next `horizon_days`; the top `high_value_share` of customers
    are flagged high value. Publishes `<name>_value` and `<name>_high_value`."""

    model: Literal["lifetime_value"]
    amount: str = "amount"
    horizon_days: int = Field(365, ge=30, le=1825)
    high_value_share: float = Field(0.2, gt=0, lt=1)


class ProductRecommendation(_Model):
    """The top `top_k` products per customer from what similar customers bought.
    Publishes `<name>_products` (comma-separated, best first)."""

    model: Literal["product_recommendation"]
    product: str = Field("product", description="The activity field naming the product.")
    top_k: int = Field(5, ge=1, le=50)
    exclude_repeats: bool = Field(False, description="Never recommend what was bought already.")
    lookback_days: int | None = Field(
        None, ge=30, description="Only purchases this recent count (default: all)."
    )
    max_products: int = Field(50_000, ge=10, description="Catalogue size the model accepts.")


class Sentiment(_Model):
    """Sentiment of feedback text, -5 (negative) to +5 (positive), per activity and averaged
    per customer. Publishes `<name>_score` and `<name>_label`."""

    model: Literal["sentiment"]
    text: str = Field("Description", description="The activity field (or column) holding the text.")
    rating: str | None = Field(
        None,
        description="Optional field with a 1-5 rating given with the text; used only to grade "
        "the model (4-5 positive, 1-2 negative).",
    )


Prediction = Annotated[
    TransactionalChurn | SubscriptionChurn | LifetimeValue | ProductRecommendation | Sentiment,
    Field(discriminator="model"),
]

# The profile fields each model publishes (after its name and an underscore).
OUTPUT_FIELDS: dict[str, tuple[str, ...]] = {
    "transactional_churn": ("score", "is_churn"),
    "subscription_churn": ("score", "is_churn"),
    "lifetime_value": ("value", "high_value"),
    "product_recommendation": ("products",),
    "sentiment": ("score", "label"),
}
