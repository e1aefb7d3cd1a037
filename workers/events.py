"""The engine's one reporting interface: events, sinks and the emitter that numbers them.

Everything a run does reaches the outside world as an :class:`Event` handed to an
:class:`EventSink`. The headless command writes them to ``events.jsonl``; the web app's sink
writes them to the database and the channel layer. An event is plain JSON-able data, so any
sink can store or forward it without knowing the engine.

Contract:

* every event of a run carries ``seq``, strictly increasing from 1 across the whole run,
  resumes included (a resumed run's numbers continue after the highest its store holds);
* ``kind`` is one of :class:`EventKind`; ``data`` holds the kind's fields listed there;
* ``timestep`` is the number of environment frames the run had consumed when it emitted.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Protocol


class EventKind(str, Enum):
    """What an event reports, and the fields its ``data`` holds."""

    RUN_STARTED = "run_started"
    """config (the RunConfig as a dict), env_id, mode, actions (names of the action subset),
    teacher (model name or null), resumed (bool), start_timestep, checkpoint_seq (on a resume:
    the seq of the CHECKPOINT event it resumes from; the events numbered after it and before
    this one are the crashed attempt's, of frames trained again now: a store forgets them, so
    that each timestep keeps one point, the resumed attempt's; null otherwise)."""
    PROGRESS = "progress"
    """timesteps, total_timesteps, fps, elapsed_s, eta_s (null until it can be estimated)."""
    METRICS = "metrics"
    """One per rollout: mean_return, success_rate, mean_length, episodes (all over the last
    100 finished episodes); policy_loss, value_loss, entropy, approx_kl, clip_fraction,
    guidance_loss, guidance_coef; teacher_accuracy (agreement with the BabyAI bot on the
    probe states the LLM teacher has answered so far, each by its latest answer, with the
    student's feedback; null without a teacher or before its first answer),
    teacher_accuracy_answered (how many probe states that is), probe_states (of how many),
    teacher_accuracy_unjudged (the same on the answered ones the student has no verdict for);
    cache_hit_rate, llm_calls, llm_latency_ms (mean), feedback_situations (situations, or
    for subgoal guidance renamed plan states, that currently carry student feedback). Subgoal
    guidance with an LLM: teacher_accuracy is plan accuracy (the teacher's subgoal against the
    bot's, on plan probes), plus plan_loops (plan states where every candidate failed) and
    plans_without_way (subgoals chosen with no way to them on the grid)."""
    HINT = "hint"
    """situation (the teacher's text), situation_key, distribution ({action: probability}),
    teacher_action (null when the hint does not count), action_taken, feedback (the sentence
    the student sent for this situation, or null), weight (how much the hint counts in the
    guidance loss, 0..1), source ("llm", "oracle" or "none"), plan (subgoal guidance: state,
    the plan state's text; subgoal, the current one or null; reached, the subgoals reached this
    episode; feedback, what the teacher reads for the state, which is then the hint's feedback
    too; null for action guidance)."""
    EVALUATION = "evaluation"
    """mean_return, success_rate, mean_length, episodes: the greedy policy on held-out seeds;
    sampled_mean_return, sampled_success_rate, sampled_mean_length: the same episodes with
    actions sampled from the policy."""
    FRAME = "frame"
    """Live view of environment 0, in bursts of consecutive steps, on average one frame every
    interval_s (``workers.engine.LiveView``): width, height, grid (width*height*3 ints,
    row-major over (y, x), each cell minigrid's (object, color, state) encoding), agent ([x, y,
    dir]), view ([x0, y0, x1, y1]: the agent's field of view, x0 <= x < x1, y0 <= y < y1,
    reaching past the grid's edges where the agent is near them), mission, interval_s (the
    run's frame_interval_s: the page plays frames one every interval_s), episode_step, action
    (the last action's name), reward (the last step's), episode_return (the shown episode's so
    far), last_episode_return (the return of the episode that ended last, or null)."""
    CHECKPOINT = "checkpoint"
    """path, timesteps."""
    TEACHER_FAULT = "teacher_fault"
    """error, fallback ("student-only"): the teacher failed during the run and training goes on
    without guidance."""
    RUN_FINISHED = "run_finished"
    """status ("succeeded" or "stopped"), summary (the summary dict)."""
    RUN_FAILED = "run_failed"
    """error, traceback."""


@dataclass(frozen=True)
class Event:
    """One numbered fact about a run."""

    seq: int
    kind: EventKind
    timestep: int
    time: float
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind.value,
            "timestep": self.timestep,
            "time": self.time,
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Event":
        return cls(
            seq=int(raw["seq"]),
            kind=EventKind(raw["kind"]),
            timestep=int(raw["timestep"]),
            time=float(raw["time"]),
            data=dict(raw.get("data") or {}),
        )


class EventSink(Protocol):
    """Receives a run's events in ``seq`` order. ``emit`` must not block for long: it is
    called from the training loop. ``close`` flushes whatever the sink buffers."""

    def emit(self, event: Event) -> None: ...

    def close(self) -> None: ...


StopSignal = Callable[[], bool]
"""Asked at every rollout boundary; returning True stops the run cooperatively."""


def never_stop() -> bool:
    return False


class ListSink:
    """Keeps events in memory (tests, the study's in-process runs)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass

    def of_kind(self, kind: EventKind) -> list[Event]:
        return [e for e in self.events if e.kind == kind]


class JsonlSink:
    """Appends one JSON object per line to a file; appending keeps a resumed run's history."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def emit(self, event: Event) -> None:
        self._file.write(json.dumps(event.to_dict(), separators=(",", ":")) + "\n")
        # Frames are many and worthless after a crash; everything else is flushed at once.
        if event.kind != EventKind.FRAME:
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_jsonl(path: str | Path) -> list[Event]:
    """Events of a JsonlSink file, in file order."""
    with Path(path).open(encoding="utf-8") as f:
        return [Event.from_dict(json.loads(line)) for line in f if line.strip()]


class FanoutSink:
    """Hands every event to several sinks, in order."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = sinks

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink.emit(event)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


class EventEmitter:
    """Numbers events and hands them to the sink. Thread-safe: the teacher's background thread
    may report faults while the training loop reports metrics."""

    def __init__(self, sink: EventSink, last_seq: int = 0, clock: Callable[[], float] = time.time):
        self.sink = sink
        self.last_seq = last_seq
        self._clock = clock
        self._lock = threading.Lock()

    def emit(self, kind: EventKind, timestep: int, **data: Any) -> Event:
        with self._lock:
            self.last_seq += 1
            event = Event(self.last_seq, kind, int(timestep), self._clock(), data)
            self.sink.emit(event)
        return event
