"""The serving store: what the API answers point lookups from (being built)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audience.runs import StageResult

if TYPE_CHECKING:
    from audience.pipeline import Context


def serving_stage(ctx: Context, result: StageResult) -> None:
    result.status = "skipped"
    result.detail["reason"] = "the serving store is not built yet"
