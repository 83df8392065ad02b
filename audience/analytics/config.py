"""The `relationships:`, `activities:`, `measures:` and `segments:` sections of the project file.

Every place that takes an expression (a filter, a measure's value, a segment condition) takes
text in the expression language (`audience.expr`) or the same expression as a JSON tree, so the
console can build what an analyst can type.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

NAME = r"^[A-Za-z][A-Za-z0-9_]*$"
# Measure and segment names are used inside expressions, so they must be identifiers.
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"

# Text, or the JSON tree of `audience.expr` ({"op": ..., "args": [...]}, {"field": ...}, ...).
Expression = str | dict[str, Any]

ACTIVITY_TYPES: dict[str, str] = {
    "SalesOrder": "a purchase; templates read its `amount` field",
    "SalesOrderLine": "one product line of a purchase",
    "Subscription": "a paid plan; fields `start`, `end` (empty while active), `amount`",
    "Loyalty": "a loyalty transaction; templates read its `points` (earned > 0, redeemed < 0)",
    "Feedback": "a review, survey answer or service case",
    "WebVisit": "a page view or session",
}
FUNCTIONS = (
    "sum",
    "average",
    "count",
    "count_distinct",
    "min",
    "max",
    "first",
    "last",
    "argmax",
    "argmin",
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _parses(value: Any) -> Any:
    """Reject an expression that does not parse when the file loads, not mid-run."""
    if value is None:
        return value
    from audience import expr

    try:
        expr.parse(value, path="")
    except expr.ExprError as e:
        raise ValueError(str(e).removeprefix(": ").removeprefix(".")) from None
    return value


class Relationship(Strict):
    """A many-to-one (or one-to-one) link: each row of `table` points at one row of `to`."""

    # Hashable: chains of relationships are keys when paths are joined.
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=IDENTIFIER,
        description="Used in paths: with name 'order', order lines can say `order.status`.",
    )
    table: str = Field(description="The 'many' side, 'source.table'.")
    column: str = Field(description="Column of `table` that holds the reference.")
    to: str = Field(description="The 'one' side, 'source.table'.")
    to_column: str | None = Field(None, description="Referenced column (default: its key).")
    kind: Literal["many_to_one", "one_to_one"] = "many_to_one"


class Activity(Strict):
    """A source table whose rows are things customers did."""

    name: str = Field(pattern=IDENTIFIER)
    table: str = Field(description="Source table, 'source.table'.")
    type: str = Field(
        "Other",
        pattern=NAME,
        description="SalesOrder, SalesOrderLine, Subscription, Loyalty, Feedback, WebVisit, "
        "or a custom name.",
    )
    customer: str = Field(
        description="The unified table ('source.table') the rows belong to; reached directly "
        "or through `relationships`."
    )
    timestamp: Expression = Field(description="When it happened (a column or an expression).")
    key: str | None = Field(None, description="Column that identifies a row (default: the key).")
    title: Expression | None = None
    description: Expression | None = None
    url: Expression | None = None
    fields: dict[str, Expression] = Field(
        default_factory=dict,
        description="Semantic fields (name -> column or expression), published in SemanticData "
        "and usable in measures and segments.",
    )
    where: Expression | None = Field(None, description="Only rows for which this is true.")
    show_in_timeline: bool = True

    @field_validator("name")
    @classmethod
    def _not_realtime(cls, value: str) -> str:
        if value == "realtime":  # ActivityIds 'realtime|...' belong to activities posted live
            raise ValueError("'realtime' is reserved for activities posted through the API")
        return value

    _expressions = field_validator("timestamp", "title", "description", "url", "where")(_parses)

    @field_validator("fields")
    @classmethod
    def _field_names(cls, value: dict[str, Expression]) -> dict[str, Expression]:
        import re

        bad = [k for k in value if not re.match(IDENTIFIER, k)]
        if bad:
            raise ValueError(f"field names must be identifiers (letters, digits, _): {bad}")
        for name, source in value.items():
            try:
                _parses(source)
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
        return value


class Window(Strict):
    """A time window over activity timestamps; none given means all time."""

    last_days: int | None = Field(None, ge=1)
    last_months: int | None = Field(None, ge=1)
    start: date | None = Field(None, description="First day included.")
    end: date | None = Field(None, description="Last day included.")

    @model_validator(mode="after")
    def _one_kind(self) -> Window:
        relative = [k for k in ("last_days", "last_months") if getattr(self, k) is not None]
        fixed = [k for k in ("start", "end") if getattr(self, k) is not None]
        if len(relative) > 1 or (relative and fixed):
            raise ValueError(
                f"give one of last_days, last_months or start/end, not {relative + fixed}"
            )
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self

    def describe(self) -> str:
        if self.last_days:
            return f"last {self.last_days} days"
        if self.last_months:
            return f"last {self.last_months} months"
        if self.start or self.end:
            return f"{self.start or '...'} to {self.end or '...'}"
        return "all time"


class Measure(Strict):
    """A number (or value) computed from rows: per customer, or for the whole business.

    Exactly one way to compute it: `template`; `function` over the rows of an `activity` or a
    `table`; or `expression`, arithmetic over other customer attributes.
    """

    name: str = Field(pattern=IDENTIFIER)
    description: str | None = None
    kind: Literal["customer_attribute", "customer_measure", "business_measure"] = (
        "customer_attribute"
    )
    template: str | None = Field(
        None, description="A ready-made measure, e.g. total_transaction_value."
    )
    activity: str | None = Field(None, description="Rows: an activity (by name) or activity type.")
    table: str | None = Field(None, description="Rows: a source table ('source.table').")
    function: Literal[FUNCTIONS] | None = None  # type: ignore[valid-type]
    of: Expression | None = Field(None, description="The value aggregated (not for count).")
    by: Expression | None = Field(
        None, description="argmax/argmin: the row with the largest/smallest `by` gives `of`."
    )
    where: Expression | None = Field(None, description="Only rows for which this is true.")
    window: Window | None = None
    dimensions: list[str | dict[str, Expression]] = Field(
        default_factory=list,
        description="Group by these (customer and business measures): a field name, or "
        "{name: expression} such as {month: 'year(ActivityTimeStamp) * 100 + "
        "month(ActivityTimeStamp)'}.",
    )
    expression: Expression | None = Field(
        None, description="Arithmetic over other customer attributes: 'spend / orders'."
    )
    default: float | int | str | bool | None = Field(
        None, description="Value for customers with no rows (null replacement)."
    )

    _expressions = field_validator("of", "by", "where", "expression")(_parses)

    @model_validator(mode="after")
    def _one_way(self) -> Measure:
        ways = [
            w
            for w, on in (
                ("template", self.template is not None),
                ("function", self.function is not None),
                ("expression", self.expression is not None),
            )
            if on
        ]
        if len(ways) != 1:
            raise ValueError(
                "give exactly one of 'template', 'function' (with 'activity' or 'table') or "
                f"'expression'; got {ways or 'none'}"
            )
        if self.function:
            if (self.activity is None) == (self.table is None):
                raise ValueError("a 'function' measure needs exactly one of 'activity' or 'table'")
            if self.function != "count" and self.of is None:
                raise ValueError(f"function '{self.function}' needs 'of' (the value to aggregate)")
            if self.function in ("argmax", "argmin") and self.by is None:
                raise ValueError(f"function '{self.function}' needs 'by'")
            if self.function in ("first", "last") and self.table and self.by is None:
                raise ValueError(
                    f"function '{self.function}' over table rows needs 'by' (what orders them); "
                    "activity rows are ordered by their timestamp"
                )
            if self.window and self.table:
                raise ValueError("a 'window' needs activity rows (their timestamp); use 'activity'")
        if self.expression is not None and self.kind != "customer_attribute":
            raise ValueError("'expression' measures are customer attributes")
        if self.dimensions and self.kind == "customer_attribute":
            raise ValueError(
                "a customer attribute has one value per customer; use kind customer_measure "
                "or business_measure for 'dimensions'"
            )
        for i, dim in enumerate(self.dimensions):
            if isinstance(dim, dict) and len(dim) != 1:
                raise ValueError(f"dimensions[{i}]: give one name: expression pair, got {dim}")
            try:
                _parses(next(iter(dim.values())) if isinstance(dim, dict) else dim)
            except ValueError as e:
                raise ValueError(f"dimensions[{i}]: {e}") from None
        return self


# -- segment conditions: a tree of groups and leaves ----------------------------------------


class AllOf(Strict):
    all: list[Condition] = Field(min_length=1, description="True when every condition is.")


class AnyOf(Strict):
    any: list[Condition] = Field(min_length=1, description="True when at least one is.")


class NotOf(Strict):
    not_: Condition = Field(alias="not")


class InSegment(Strict):
    segment: str = Field(description="Member of this segment.")


class ActivityCondition(Strict):
    """Customers with (or without) matching activities: 'bought shoes in the last 30 days'."""

    activity: str = Field(description="An activity name or activity type.")
    where: Expression | None = None
    within: Window | None = None
    count: str = Field(
        ">= 1",
        pattern=r"^\s*(>=|<=|>|<|=|!=)\s*\d+\s*$",
        description="How many matching activities: '>= 1' (default), '> 3', '= 0'.",
    )

    _where = field_validator("where")(_parses)


def _condition_tag(value: Any) -> str:
    if isinstance(value, str):
        return "expression"
    if isinstance(value, BaseModel):
        return {AllOf: "all", AnyOf: "any", NotOf: "not", InSegment: "segment"}.get(
            type(value), "activity"
        )
    if isinstance(value, dict):
        for key in ("all", "any", "not", "segment", "activity"):
            if key in value:
                return key
    return "tree"


Condition = Annotated[
    Annotated[str, Tag("expression")]
    | Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[NotOf, Tag("not")]
    | Annotated[InSegment, Tag("segment")]
    | Annotated[ActivityCondition, Tag("activity")]
    | Annotated[dict[str, Any], Tag("tree")],
    Discriminator(_condition_tag),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()


class Segment(Strict):
    """A group of customers: rules (condition trees) combined by a set operation."""

    name: str = Field(pattern=IDENTIFIER)
    description: str | None = None
    kind: Literal["dynamic", "static"] = Field(
        "dynamic",
        description="dynamic: recomputed every run; static: computed once, refreshed on "
        "demand with `audience segments refresh`.",
    )
    rules: list[Condition] = Field(min_length=1)
    combine: Literal["union", "intersect", "except"] = Field(
        "union", description="How rules combine; except = the first rule minus the others."
    )

    @model_validator(mode="after")
    def _except_needs_two(self) -> Segment:
        if self.combine == "except" and len(self.rules) < 2:
            raise ValueError("combine: except needs at least two rules (first minus the others)")
        return self

    @field_validator("rules")
    @classmethod
    def _expressions_parse(cls, rules: list[Any]) -> list[Any]:
        def walk(cond: Any, path: str) -> None:
            match cond:
                case AllOf(all=items) | AnyOf(any=items):
                    key = "all" if isinstance(cond, AllOf) else "any"
                    for i, c in enumerate(items):
                        walk(c, f"{path}.{key}[{i}]")
                case NotOf(not_=inner):
                    walk(inner, f"{path}.not")
                case str() | dict():
                    try:
                        _parses(cond)
                    except ValueError as e:
                        raise ValueError(f"{path}: {e}") from None

        for i, rule in enumerate(rules):
            walk(rule, f"[{i}]")
        return rules
