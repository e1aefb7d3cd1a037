"""One run's directory as the engine leaves it: ``events.jsonl``, ``summary.json`` and
``checkpoint/``; its state (done, resumable, to redo) and its events as one timeline.

A run is *done* when ``summary.json`` says ``"status": "succeeded"`` (the engine also writes a
summary when a run is stopped; such a run still has its checkpoint and is resumed). A run
with a checkpoint but no such summary is *resumable*; anything else starts over.

After a resume the file holds, between the checkpoint and the resumed ``run_started``, events
of rollouts that the resumed run did again. ``timeline`` drops them, so curves read from it
have one point per rollout and the dashboard import replays what the finished run did.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any

from workers.__main__ import EVENTS_FILE
from workers.engine import CHECKPOINT_DIR
from workers.events import Event, EventKind

SUMMARY_FILE = "summary.json"


class RunState(str, Enum):
    DONE = "done"
    RESUMABLE = "resumable"
    TODO = "todo"


def read_summary(directory: Path) -> dict[str, Any] | None:
    path = directory / SUMMARY_FILE
    return json.loads(path.read_text()) if path.exists() else None


def run_state(directory: Path) -> RunState:
    summary = read_summary(directory)
    if summary is not None and summary.get("status") == "succeeded":
        return RunState.DONE
    if (directory / CHECKPOINT_DIR / "state.json").exists():
        return RunState.RESUMABLE
    return RunState.TODO


def read_events(directory: Path) -> list[Event]:
    """The events file in file order, without a last line cut short by a crash mid-write."""
    path = directory / EVENTS_FILE
    if not path.exists():
        return []
    events: list[Event] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            events.append(Event.from_dict(json.loads(line)))
        except json.JSONDecodeError:
            if number != len(lines) - 1:
                raise
    return events


def repair_events(directory: Path) -> int:
    """Cut a partial last line (a crash mid-write) so appended events start on a line of their
    own; returns the last complete event's ``seq`` (0 for none)."""
    path = directory / EVENTS_FILE
    if not path.exists():
        return 0
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        path.write_bytes(data[:end])
    events = read_events(directory)
    return events[-1].seq if events else 0


def resume_point(events: list[Event]) -> int:
    """Frames the run will resume from: those of its last checkpoint event (0 without one)."""
    checkpoints = [e for e in events if e.kind == EventKind.CHECKPOINT]
    return int(checkpoints[-1].data["timesteps"]) if checkpoints else 0


def timeline(events: list[Event]) -> list[Event]:
    """The events of the run as it finally happened: at each resume, the events emitted after
    the checkpoint it resumed from (work that was then done again) are dropped."""
    kept: list[Event] = []
    for event in events:
        if event.kind == EventKind.RUN_STARTED and isinstance(event.data.get("checkpoint_seq"), int):
            kept = [e for e in kept if e.seq <= event.data["checkpoint_seq"]]
        elif event.kind == EventKind.RUN_STARTED and event.data.get("resumed"):
            # Written before run_started said which checkpoint it resumed from.
            start = int(event.data["start_timestep"])
            checkpoints = [
                i for i, e in enumerate(kept) if e.kind == EventKind.CHECKPOINT and int(e.data["timesteps"]) == start
            ]
            if checkpoints:
                del kept[checkpoints[-1] + 1 :]
            else:
                # The checkpoint was saved but its event was lost in the crash: keep what
                # happened up to its frame count.
                kept = [e for e in kept if e.timestep <= start and e.kind != EventKind.RUN_FINISHED]
        kept.append(event)
    return kept
