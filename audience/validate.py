"""`audience validate`: the checks that need the data, after the structural ones.

Every table must be readable and every column the project names must exist in it. All
problems are collected, so a user fixes the file in one pass.
"""

from __future__ import annotations

from audience.ingest import SourceError, describe_table
from audience.ingest.landing import column_problems
from audience.project import Project


def validate_project(project: Project) -> list[str]:
    """Problems as `config.path: message` lines; empty when the project is usable."""
    problems: list[str] = []
    for ref in project.table_refs():
        config_path = ref.config_path(project)
        try:
            columns = describe_table(project, ref)
        except SourceError as e:
            problems.append(str(e))
            continue
        problems += column_problems(ref, config_path, columns)
    return problems
