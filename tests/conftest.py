"""Shared test helpers: build projects in a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from audience.project import Project, load_project, parse_project


def make_project(root: Path, sources: list[dict[str, Any]], **settings: Any) -> Project:
    """A project rooted at `root` (its workspace inside it) from plain data."""
    data = {"name": "test", "sources": sources, **settings}
    # Also on disk (JSON is YAML), so CLI commands can be pointed at the project.
    (root / "audience.yaml").write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    return parse_project(data, root / "audience.yaml", root)


@pytest.fixture
def project_factory(tmp_path: Path):
    def factory(sources: list[dict[str, Any]], **settings: Any) -> Project:
        return make_project(tmp_path, sources, **settings)

    return factory


DEMO = Path(__file__).resolve().parents[1] / "examples" / "retail"


def demo_project(folder: Path, people: int, seed: int) -> Project:
    """The demo project (examples/retail) on data generated into `folder`."""
    import shutil
    import sys

    sys.path.insert(0, str(DEMO))
    try:
        from generate import generate
    finally:
        sys.path.remove(str(DEMO))
    shutil.copy(DEMO / "audience.yaml", folder / "audience.yaml")
    generate(folder / "data", people=people, seed=seed)
    return load_project(folder / "audience.yaml")
