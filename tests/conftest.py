"""Shared test helpers: build projects in a temporary folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audience.project import Project, parse_project


def make_project(root: Path, sources: list[dict[str, Any]], **settings: Any) -> Project:
    """A project rooted at `root` (its workspace inside it) from plain data."""
    data = {"name": "test", "sources": sources, **settings}
    return parse_project(data, root / "audience.yaml", root)


@pytest.fixture
def project_factory(tmp_path: Path):
    def factory(sources: list[dict[str, Any]], **settings: Any) -> Project:
        return make_project(tmp_path, sources, **settings)

    return factory
