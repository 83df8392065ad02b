"""The error of the enrichment stage: its message names the project-file path at fault
(`enrichments[2].column: ...`), so the CLI shows it as it is."""

from __future__ import annotations


class EnrichError(Exception):
    pass
