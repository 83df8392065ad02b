"""What every request shares: the project, the current run, the serving store, the key store,
the audit log, the real-time store and the run manager.

Reads always come from the current (last good) run. The `current` pointer is checked at most
every POINTER_CHECK_S seconds; when it names a new run, the new run's serving store is opened
and swapped in with one assignment, so a request sees the old run or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audience.project import Project, load_project
from audience.runs import Run, RunError, Workspace

if TYPE_CHECKING:
    from audience.serving import ServingStore

POINTER_CHECK_S = 0.5


@dataclass(frozen=True)
class RunView:
    """One run as requests see it: the run and its serving store, swapped as a pair."""

    run: Run
    serving: ServingStore


class Server:
    def __init__(self, project_file: Path):
        from audience.api.auth import AuditLog, KeyStore
        from audience.realtime import RealtimeStore

        self.project_file = project_file
        self.project: Project = load_project(project_file)
        self._project_mtime = project_file.stat().st_mtime_ns
        workspace = self.project.workspace_path
        workspace.mkdir(parents=True, exist_ok=True)
        self.keys = KeyStore(workspace / "api_keys.sqlite")
        self.audit = AuditLog(workspace / "audit.sqlite")
        self.realtime = RealtimeStore(workspace / "realtime.sqlite")
        self._view: RunView | None = None
        self._retired: RunView | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self.runs: Any = None  # the RunManager, set by app.py (it needs the server)

    @property
    def workspace(self) -> Workspace:
        return Workspace(self.project.workspace_path, self.project.keep_runs)

    def reload_project(self) -> Project:
        """Read the project file again (after a change through the API)."""
        self.project = load_project(self.project_file)
        self._project_mtime = self.project_file.stat().st_mtime_ns
        return self.project

    def _reload_if_changed(self) -> None:
        # Another worker may have changed the project file through the API.
        try:
            mtime = self.project_file.stat().st_mtime_ns
        except OSError:
            return
        if mtime != self._project_mtime:
            self._project_mtime = mtime
            # A file edited by hand and broken for now: keep serving the last good project.
            with contextlib.suppress(Exception):
                self.project = load_project(self.project_file)

    def view(self) -> RunView:
        """The current run and its serving store; raises RunError when there is none yet."""
        now = time.monotonic()
        view = self._view
        if view is not None and now - self._checked < POINTER_CHECK_S:
            return view
        with self._lock:
            self._checked = now
            self._reload_if_changed()
            current_id = self.workspace.current_id()
            if current_id is None:
                raise RunError("no run has finished yet: run 'audience run' or POST /api/v1/runs")
            if self._view is None or self._view.run.id != current_id:
                from audience.serving import ServingStore

                run = self.workspace.load(current_id)
                old, self._view = self._view, RunView(run, ServingStore.open(run))
                # Requests may still read the store just replaced; close the one before it.
                if self._retired is not None:
                    self._retired.serving.close()
                self._retired = old
            return self._view

    def close(self) -> None:
        if self.runs is not None:
            self.runs.stop()
        for view in (self._view, self._retired):
            if view is not None:  # LMDB allows one open environment per file and process
                view.serving.close()
        self._view = self._retired = None
        close_realtime = getattr(self.realtime, "close", None)
        if close_realtime:
            close_realtime()
