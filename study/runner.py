"""Runs a study: every (level, mode, seed) of a spec through ``workers.engine.train``, in a
process pool, resumable, with one progress bar over all runs.

Contract:

* each run writes its own directory (``RunKey.directory``): ``events.jsonl`` through the
  engine's ``JsonlSink``, ``summary.json`` and ``checkpoint/``;
* a run that is done (``study.rundir``) is never run again; a run with a checkpoint resumes
  from it, its event numbers continuing after the file's last one; any other run starts over;
* the output directory keeps ``spec.json``; running a different spec into it is refused, so a
  study never mixes budgets;
* one process per run at a time (``max_tasks_per_child=1``: a fresh process per run, forked
  from a server that has the engine imported, so no run inherits another's LLM, threads or
  memory); a lock file per run keeps two study processes from writing one run;
* the progress bar counts frames over all runs, from each run's PROGRESS events as they
  happen (rollout by rollout), with the ETA over the frames still to train;
* a worker process that dies (a crash in native code, out of memory) does not end the study:
  the unfinished runs go on in a fresh pool (``MAX_POOL_RESTARTS``);
* Ctrl-C (or SIGTERM) asks every run to stop at its next rollout boundary with a checkpoint,
  and starts no new run; a second Ctrl-C ends the worker processes at once;
* each invocation appends a line to ``invocations.jsonl`` (command, workers, start, wall time,
  runs done), from which the report takes the study's wall time.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing as mp
import os
import platform
import queue
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from tqdm import tqdm

from study.rundir import SUMMARY_FILE, RunState, read_events, read_summary, repair_events, resume_point, run_state
from study.spec import RunKey, StudySpec
from workers.__main__ import EVENTS_FILE
from workers.engine import train
from workers.events import Event, EventKind, FanoutSink, JsonlSink

SPEC_FILE = "spec.json"
INVOCATIONS_FILE = "invocations.jsonl"
LOCK_FILE = ".lock"
MAX_POOL_RESTARTS = 3
"""A worker that dies (a crash in native code, out of memory) breaks the whole pool; the
unfinished runs then go on in a fresh one, resuming from their checkpoints, at most this many
times per invocation."""


class StudyError(RuntimeError):
    """The study cannot start: a spec mismatch or another process on the same directory."""


@dataclass
class Outcome:
    """What one invocation did."""

    done: list[str] = field(default_factory=list)
    """Runs finished now or before."""
    stopped: list[str] = field(default_factory=list)
    """Runs stopped by a signal, resumable."""
    failed: dict[str, str] = field(default_factory=dict)
    """Runs that raised, with the error."""
    wall_s: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.stopped and not self.failed


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` or raise StudyError if another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StudyError(f"{path.parent} is in use by another process") from None
        yield


# --- in the worker process ------------------------------------------------------------------

_progress: Any = None
_stop: Any = None


def _init_worker(progress: Any, stop: Any) -> None:
    global _progress, _stop
    _progress, _stop = progress, stop
    # The parent turns Ctrl-C into the shared stop flag; the run must not die mid-rollout.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A run reports through its sink. Its only writes to stdout are minigrid's own prints while
    # it generates a level ("Sampling rejected: ..."), which would break up the progress bar.
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of this process)


class _ProgressSink:
    """Forwards a run's frame count to the parent's progress bar."""

    def __init__(self, name: str) -> None:
        self.name = name

    def emit(self, event: Event) -> None:
        if event.kind == EventKind.RUN_STARTED:
            _progress.put((self.name, int(event.data["start_timestep"])))
        elif event.kind == EventKind.PROGRESS:
            _progress.put((self.name, int(event.data["timesteps"])))

    def close(self) -> None:
        pass


def _execute(spec: StudySpec, key: RunKey, out: Path) -> dict[str, Any] | None:
    """Run (or resume) one run to its end; returns its summary, or None when the study was
    stopped before the run started. (Stopping does not cancel queued futures: on Python 3.11
    a pool that breaks later, at a second Ctrl-C, fails on cancelled ones and hangs.)"""
    if _stop.is_set():
        return None
    directory = key.directory(out)
    with locked(directory / LOCK_FILE):
        state = run_state(directory)
        if state == RunState.DONE:
            return read_summary(directory)  # type: ignore[return-value]
        if state == RunState.RESUMABLE:
            last_seq: int | None = repair_events(directory)
        else:
            # Starting over: what an attempt without a checkpoint wrote is of no use.
            for stale in (EVENTS_FILE, SUMMARY_FILE):
                (directory / stale).unlink(missing_ok=True)
            last_seq = None
        sink = FanoutSink(JsonlSink(directory / EVENTS_FILE), _ProgressSink(key.name))
        return train(
            spec.config(key.level, key.mode, key.seed),
            sink,
            out_dir=directory,
            should_stop=_stop.is_set,
            resume=state == RunState.RESUMABLE,
            last_seq=last_seq,
        )


# --- in the parent --------------------------------------------------------------------------


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Where the runs ran: CPU model and count, OS, Python and the versions that set speed."""
    versions = {}
    for package in ("torch", "stable-baselines3", "llama-cpp-python", "minigrid"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **versions,
    }


def prepare(spec: StudySpec, out: Path) -> None:
    """Validate the spec and bind ``out`` to it (raises StudyError if ``out`` holds another)."""
    spec.validate()
    out.mkdir(parents=True, exist_ok=True)
    path = out / SPEC_FILE
    if path.exists():
        existing = json.loads(path.read_text())
        if existing != json.loads(json.dumps(spec.to_dict())):
            raise StudyError(f"{out} holds a study of another spec ({path}); choose another output directory")
    else:
        path.write_text(json.dumps(spec.to_dict(), indent=2))


def frames_done(key: RunKey, out: Path) -> int:
    """Frames of the run already trained and kept (a finished run counts its whole budget)."""
    directory = key.directory(out)
    state = run_state(directory)
    if state == RunState.DONE:
        return key.timesteps
    if state == RunState.RESUMABLE:
        return resume_point(read_events(directory))
    return 0


def progress_bar(spec: StudySpec, initial: int, show: bool) -> tqdm:
    """The bar over the frames of every run of ``spec`` (on stderr), ``initial`` of them trained
    before this invocation."""
    return tqdm(
        total=sum(k.timesteps for k in spec.runs()),
        initial=initial,
        unit="frame",
        unit_scale=True,
        smoothing=0,  # the ETA from the average rate of this invocation, not the last seconds'
        desc=f"study {spec.name}",
        dynamic_ncols=True,
        file=sys.stderr,
        disable=not show,
    )


def run_study(
    spec: StudySpec, out: Path, *, workers: int, command: str | None = None, show_progress: bool = True
) -> Outcome:
    """Run every run of ``spec`` not yet done, ``workers`` at a time, into ``out``. ``command``
    is the command line recorded in ``invocations.jsonl``."""
    prepare(spec, out)
    with locked(out / LOCK_FILE):
        return _run_all(spec, out, workers, command, show_progress)


def _run_all(spec: StudySpec, out: Path, workers: int, command: str | None, show_progress: bool) -> Outcome:
    started = time.time()
    keys = spec.runs()
    outcome = Outcome(done=[k.name for k in keys if run_state(k.directory(out)) == RunState.DONE])
    todo = [k for k in keys if k.name not in outcome.done]
    frames = {k.name: frames_done(k, out) for k in keys}
    bar = progress_bar(spec, sum(frames.values()), show_progress)

    def note_runs() -> None:
        bar.set_postfix_str(f"runs {len(outcome.done)}/{len(keys)} done, {len(outcome.failed)} failed")

    note_runs()
    # Each run's process is forked from a server that imported the engine once: a run starts
    # without paying torch's import, and nothing forks the parent, which holds threads.
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["study.runner"])
    progress, stop = ctx.Queue(), ctx.Event()
    signals = 0

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal signals
        signals += 1
        stop.set()
        if signals == 1:
            bar.write(
                "stopping: runs save a checkpoint at their next rollout boundary (Ctrl-C again to abort)", file=sys.stderr
            )
        else:
            for child in mp.active_children():
                child.terminate()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    remaining, restarts = todo, 0
    try:
        while remaining:
            broken = False
            with ProcessPoolExecutor(
                max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(progress, stop), max_tasks_per_child=1
            ) as pool:
                futures = {pool.submit(_execute, spec, key, out): key for key in remaining}
                pending = set(futures)
                while pending:
                    finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    _drain(progress, frames, bar)
                    for future in finished:
                        broken |= _settle(future, futures[future], outcome, bar)
                    note_runs()
                _drain(progress, frames, bar)
            settled = {*outcome.done, *outcome.stopped, *outcome.failed}
            remaining = [k for k in remaining if k.name not in settled]
            if not broken or stop.is_set() or not remaining:
                break
            if restarts == MAX_POOL_RESTARTS:
                for key in remaining:
                    outcome.failed[key.name] = (
                        f"worker processes died {restarts + 1} times (crash in native code or out of memory)"
                    )
                break
            restarts += 1
            bar.write(
                f"a worker process died (crash in native code or out of memory): the {len(remaining)} unfinished "
                f"runs go on in a fresh pool, resuming from their checkpoints ({restarts}/{MAX_POOL_RESTARTS})",
                file=sys.stderr,
            )
        settled = {*outcome.done, *outcome.stopped, *outcome.failed}
        outcome.stopped += [k.name for k in remaining if k.name not in settled]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        bar.close()
    log_invocation(out, outcome, started=started, runs_total=len(keys), command=command, workers=workers,
                   machine=machine())
    return outcome


def log_invocation(out: Path, outcome: Outcome, *, started: float, runs_total: int, **fields: Any) -> None:
    """Set ``outcome.wall_s`` (since ``started``, a Unix time) and append the invocation's line
    to ``invocations.jsonl``: its start, wall time, runs done, and ``fields`` (command,
    workers, machine, ...)."""
    outcome.wall_s = time.time() - started
    line = {
        "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        **fields,
        "wall_s": round(outcome.wall_s, 1),
        "runs_done": len(outcome.done),
        "runs_total": runs_total,
    }
    with (out / INVOCATIONS_FILE).open("a") as log:
        log.write(json.dumps(line) + "\n")


def _drain(progress: Any, frames: dict[str, int], bar: tqdm) -> None:
    """Move the bar by the frames the runs reported since the last call."""
    while True:
        try:
            name, timesteps = progress.get_nowait()
        except queue.Empty:
            return
        bar.update(timesteps - frames[name])
        frames[name] = timesteps


def _settle(future: Future, key: RunKey, outcome: Outcome, bar: tqdm) -> bool:
    """Record how the run ended; True when its worker died and broke the pool (the run is then
    left unsettled, to go on in a fresh pool)."""
    error = future.exception()
    if isinstance(error, BrokenProcessPool):
        return True
    if error is not None:
        message = f"{type(error).__name__}: {error}"
        outcome.failed[key.name] = message
        bar.write(f"failed {key.name}: {message}", file=sys.stderr)
        return False
    summary = future.result()
    if summary is not None and summary["status"] == "succeeded":
        outcome.done.append(key.name)
        bar.write(done_line(key, summary), file=sys.stderr)
    else:
        outcome.stopped.append(key.name)
    return False


def done_line(key: RunKey, summary: dict[str, Any]) -> str:
    """What the progress output says of a run that has just succeeded."""
    reached = summary["frames_to_threshold"]
    return (
        f"done {key.name}: final eval return {summary['final_eval_return']:.3f} "
        f"(sampled {summary['final_eval_sampled_return']:.3f}), "
        f"threshold {summary['return_threshold']} at {reached if reached is not None else '—'} frames, "
        f"{summary['wall_s']:.0f} s"
    )
