"""Runs started by the API, and scheduled refreshes.

One run at a time per workspace, whoever starts it (an API worker, the schedule, the CLI):
the runner holds an exclusive `flock` on `<workspace>/run.lock` for the whole run, and writes
who holds it into the file, so a refusal can say which run is in the way. `run_lock` is the
same lock for other callers (the CLI's `audience run`).

With several uvicorn workers, each has a RunManager, but only the one that gets the
`flock` on `<workspace>/scheduler.lock` runs the schedule.

Reads are not blocked by runs: the server keeps answering from the current run until the
new one becomes current.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from croniter import croniter

from audience import pipeline
from audience.project import Project, ProjectError, Schedule, load_project
from audience.runs import Workspace, pid_alive, utc_now

if TYPE_CHECKING:
    from audience.api.auth import Principal
    from audience.api.server import Server

log = logging.getLogger(__name__)

RUN_LOCK = "run.lock"
SCHEDULER_LOCK = "scheduler.lock"
# The scheduler wakes at least this often, to notice a changed schedule and a clock change.
MAX_SLEEP_S = 60.0


class RunInProgress(Exception):
    """Another run holds the workspace; `holder` says who started it and when."""

    def __init__(self, holder: dict[str, Any]):
        self.holder = holder
        started = holder.get("started") or "an unknown time"
        by = holder.get("by") or "someone"
        super().__init__(f"a run is in progress (started at {started}, by {by})")


class _FileLock:
    """An exclusive, non-blocking flock on a file in the workspace, which also records who
    holds it (the kernel drops the lock if the holder dies, so a crash never blocks runs)."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self, holder: dict[str, Any]) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({**holder, "pid": os.getpid()}).encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # nobody holds it now
        finally:
            os.close(fd)  # closing releases the flock

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock, if anyone (read from the file; no lock is taken)."""
        try:
            text = self.path.read_text(encoding="utf-8")
            holder = json.loads(text) if text.strip() else None
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(holder, dict) or not pid_alive(int(holder.get("pid", 0))):
            return None
        return holder


@contextmanager
def run_lock(workspace: Path, by: str = "the command line") -> Iterator[None]:
    """Hold the workspace's run lock for a run started elsewhere than the API; raises
    RunInProgress when a run is already going."""
    lock = _FileLock(workspace / RUN_LOCK)
    if not lock.acquire({"started": utc_now(), "by": by, "trigger": "cli"}):
        raise RunInProgress(lock.holder() or {})
    try:
        yield
    finally:
        lock.release()


def _default_pipeline(project: Project) -> Any:
    return pipeline.run_pipeline(project)


class RunManager:
    """Starts runs in a background thread, one at a time, and runs the schedule.

    `pipeline`, `clock` and `wait` are for tests: the run itself, the current time (aware),
    and a sleep that returns True when the manager is stopping.
    """

    def __init__(
        self,
        server: Server,
        *,
        pipeline: Callable[[Project], Any] | None = None,
        clock: Callable[[], datetime] | None = None,
        wait: Callable[[float], bool] | None = None,
    ):
        self.server = server
        self._pipeline = pipeline or _default_pipeline
        self._clock = clock or (lambda: datetime.now(UTC))
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._lock = threading.Lock()
        self._run_lock: _FileLock | None = None
        self._thread: threading.Thread | None = None
        self._current: dict[str, Any] | None = None
        self._last: dict[str, Any] | None = None
        self._scheduler: threading.Thread | None = None
        self._scheduler_lock: _FileLock | None = None
        self._schedule_state: dict[str, Any] = {"next": None, "fired": 0, "skipped": 0}

    @property
    def workspace(self) -> Path:
        return self.server.project.workspace_path

    # --- runs ----------------------------------------------------------------------------

    def trigger(self, principal: Principal | None, *, trigger: str = "api") -> dict[str, Any]:
        """Start a run in the background. Raises RunInProgress if one is going (in any
        process), and ProjectError if the project file is not valid any more."""
        # The file may have been changed by another worker or by hand since this process
        # read it: a run always uses the file as it is now.
        project = self.server.reload_project()
        by = principal.name if principal else "the schedule"
        started = self._clock().astimezone(UTC).isoformat(timespec="seconds")
        holder = {"started": started, "by": by, "trigger": trigger}
        lock = _FileLock(project.workspace_path / RUN_LOCK)
        with self._lock:
            if not lock.acquire(holder):
                raise RunInProgress(lock.holder() or {})
            self._run_lock = lock
            self._current = {**holder, "key_id": principal.key_id if principal else None}
            self._thread = threading.Thread(
                target=self._execute, args=(project,), name="audience-run", daemon=True
            )
            self._thread.start()
        return {"status": "started", **holder}

    def _execute(self, project: Project) -> None:
        started = datetime.now(UTC).timestamp()
        outcome: dict[str, Any] = {"status": "failed", "run_id": None}
        try:
            run = self._pipeline(project)
            outcome = {"status": run.status, "run_id": run.id}
        except Exception as e:  # the run folder records the failure too; keep the reason here
            log.warning("run failed: %s", e)
            found = self._run_since(project, started)
            outcome = {"status": "failed", "run_id": found.id if found else None, "error": str(e)}
        finally:
            with self._lock:
                self._last = {**(self._current or {}), **outcome, "finished": utc_now()}
                self._current = None
                lock, self._run_lock = self._run_lock, None
            if lock is not None:
                lock.release()

    def _run_since(self, project: Project, started: float) -> Any:
        """The newest run folder if it started since `started` (so it is the one we ran)."""
        runs = Workspace(project.workspace_path, project.keep_runs).runs()
        if runs and runs[0].results.get("started_unix", 0) >= started - 1:
            return runs[0]
        return None

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for this process's run to finish; False on timeout."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def status(self) -> dict[str, Any]:
        """Whether a run is going (in any process), what it is, and how the last one went."""
        project = self.server.project
        workspace = Workspace(project.workspace_path, project.keep_runs)
        holder = self._current or _FileLock(project.workspace_path / RUN_LOCK).holder()
        runs = workspace.runs()
        if holder is not None:
            holder = {k: v for k, v in holder.items() if k != "pid"}
            in_flight = next((r for r in runs if r.status == "running"), None)
            if in_flight is not None:
                holder["run_id"] = in_flight.id
        finished = next((r for r in runs if r.status != "running"), None)
        last = None
        if finished is not None:
            last = {
                k: finished.results.get(k)
                for k in ("status", "started", "finished", "seconds", "error", "published")
            }
            last = {"run_id": finished.id, **last}
            if self._last and self._last.get("run_id") == finished.id:
                last.update({k: self._last[k] for k in ("by", "trigger") if k in self._last})
        return {
            "running": holder is not None,
            "run": holder,
            "last": last,
            "current_run_id": workspace.current_id(),
            "schedule": self._schedule_status(),
        }

    # --- the schedule --------------------------------------------------------------------

    def start_scheduler(self) -> bool:
        """Run the project's schedule in this process if no other process does; True if
        this one does. The schedule is read from the project file as it changes, so one
        set while serving takes effect without a restart."""
        if self._scheduler is not None:
            return True
        lock = _FileLock(self.workspace / SCHEDULER_LOCK)
        if not lock.acquire({"started": utc_now()}):
            log.info("another process runs the schedule")
            return False
        self._scheduler_lock = lock
        self._stop.clear()
        self._scheduler = threading.Thread(
            target=self._schedule_loop, name="audience-scheduler", daemon=True
        )
        self._scheduler.start()
        return True

    def stop(self) -> None:
        """Stop the schedule. A run in progress goes on in its thread (a run killed half-way
        would leave the last good run current anyway)."""
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.join(timeout=10)
            self._scheduler = None
        if self._scheduler_lock is not None:
            self._scheduler_lock.release()
            self._scheduler_lock = None

    def _schedule_loop(self) -> None:
        reader = _ScheduleReader(self.server.project_file, self.server.project.schedule)
        target: datetime | None = None
        used: Schedule | None = None
        while not self._stop.is_set():
            schedule = reader.current()
            now = self._clock()
            if schedule != used:
                used = schedule
                target = next_time(schedule, now) if schedule else None
                self._schedule_state["next"] = target.isoformat() if target else None
            if target is None:
                if self._wait(MAX_SLEEP_S):
                    return
                continue
            remaining = (target - now).total_seconds()
            if remaining > 0:
                if self._wait(min(remaining, MAX_SLEEP_S)):
                    return
                continue
            self._fire(target)
            assert used is not None
            target = next_time(used, max(self._clock(), target))
            self._schedule_state["next"] = target.isoformat()

    def _fire(self, due: datetime) -> None:
        state = self._schedule_state
        try:
            self.trigger(None, trigger="schedule")
        except RunInProgress as e:
            log.warning("scheduled run of %s skipped: %s", due.isoformat(), e)
            self.server.audit.record(None, "run.skip", "schedule", {"due": due.isoformat()})
            state["skipped"] += 1
            state["last_skipped"] = due.isoformat()
            return
        except ProjectError as e:
            log.error("scheduled run of %s not started: %s", due.isoformat(), e)
            state["skipped"] += 1
            return
        log.info("scheduled run of %s started", due.isoformat())
        self.server.audit.record(None, "run.start", "schedule", {"due": due.isoformat()})
        state["fired"] += 1
        state["last_fired"] = due.isoformat()

    def _schedule_status(self) -> dict[str, Any] | None:
        schedule = self.server.project.schedule
        if schedule is None:
            return None
        out: dict[str, Any] = {"cron": schedule.cron, "timezone": schedule.timezone}
        if self._scheduler is not None:
            out.update(self._schedule_state, here=True)
        else:
            out.update(next=next_time(schedule, self._clock()).isoformat(), here=False)
        return out


def next_time(schedule: Schedule, after: datetime) -> datetime:
    """The first time the schedule fires after `after`, in the schedule's time zone."""
    local = after.astimezone(ZoneInfo(schedule.timezone))
    return croniter(schedule.cron, local).get_next(datetime)


class _ScheduleReader:
    """The project file's schedule, read again when the file changes."""

    def __init__(self, project_file: Path, schedule: Schedule | None):
        self.path = project_file
        self.schedule = schedule
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def current(self) -> Schedule | None:
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self.schedule = load_project(self.path).schedule
            except ProjectError as e:
                log.error("the project file is not valid; keeping the schedule: %s", e)
        return self.schedule
