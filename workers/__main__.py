"""Headless command line: ``python -m workers train ...``, ``python -m workers models``,
``python -m workers levels``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import fields
from pathlib import Path

from workers.config import GuidanceKind, Mode, RunConfig, field_docs
from workers.events import Event, EventKind, FanoutSink, JsonlSink, read_jsonl

EVENTS_FILE = "events.jsonl"


class ProgressBar:
    """A sink that draws a tqdm bar from PROGRESS and METRICS events."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="frame", dynamic_ncols=True, file=sys.stderr)
        self.postfix: dict[str, str] = {}

    def emit(self, event: Event) -> None:
        if event.kind == EventKind.PROGRESS:
            self.bar.n = event.data["timesteps"]
            self.bar.refresh()
        elif event.kind == EventKind.METRICS:
            for name in ("mean_return", "teacher_accuracy"):
                if event.data.get(name) is not None:
                    self.postfix[name.replace("mean_", "")] = f"{event.data[name]:.3f}"
            self.bar.set_postfix(self.postfix, refresh=True)
        elif event.kind in (EventKind.TEACHER_FAULT, EventKind.RUN_FAILED):
            self.bar.write(f"{event.kind.value}: {event.data['error']}")

    def close(self) -> None:
        self.bar.close()


def _train_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="run one training run headless",
        description="Train one run; writes OUT/events.jsonl (one event a line), OUT/summary.json and "
        "OUT/checkpoint/. Ctrl-C stops at the next rollout boundary and saves a checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    docs = field_docs()
    short = {"env_id": "--env", "total_timesteps": "--timesteps"}
    for f in fields(RunConfig):
        flag = short.get(f.name, "--" + f.name.replace("_", "-"))
        default = f.default
        kind = {int: int, float: float, str: str}.get(type(default), str)
        enum = {"mode": Mode, "guidance_kind": GuidanceKind}.get(f.name)
        extra = {"choices": [m.value for m in enum]} if enum else {}
        p.add_argument(flag, dest=f.name, type=kind, default=getattr(default, "value", default), help=docs[f.name], **extra)
    p.add_argument("--out", required=True, type=Path, help="directory for events.jsonl, summary.json and checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from OUT's checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _cmd_train(args: argparse.Namespace) -> int:
    from workers.engine import train
    from workers.teachers import TeacherError

    raw = {f.name: getattr(args, f.name) for f in fields(RunConfig)}
    config = RunConfig.from_dict(raw)
    events_path = args.out / EVENTS_FILE
    last_seq = None
    if args.resume and events_path.exists():
        events = read_jsonl(events_path)
        last_seq = events[-1].seq if events else None
    sinks = [JsonlSink(events_path)]
    if not args.quiet:
        sinks.append(ProgressBar(config.total_timesteps))
    stop_requested = False

    def request_stop(*_):
        nonlocal stop_requested
        if stop_requested:  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        stop_requested = True
        print("\nstopping at the next rollout boundary (Ctrl-C again to abort)", file=sys.stderr)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        summary = train(
            config,
            FanoutSink(*sinks),
            out_dir=args.out,
            should_stop=lambda: stop_requested,
            resume=args.resume,
            last_seq=last_seq,
        )
    except (TeacherError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_models() -> int:
    """One line a model, tab-separated: name (the default marked so), where its file is (or
    "assembled on first use", or "not installed" for a catalogue model that is not), size,
    description."""
    from workers.models import CATALOGUE, DEFAULT_TEACHER, available_models

    models = available_models()
    for name in dict.fromkeys([*CATALOGUE, *models]):
        path, model = models.get(name), CATALOGUE.get(name)
        if path is None:
            where = "not installed"
        else:
            where = str(path) if path.is_file() else "assembled on first use"
        size = model.size if model is not None else path.stat().st_size
        description = model.description if model is not None else "a GGUF file in a model directory"
        label = f"{name} (default)" if name == DEFAULT_TEACHER else name
        print(f"{label}\t{where}\t{size / 1e6:,.0f} MB\t{description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description="bidir's learning engine, headless")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    sub.add_parser("models", help="list the teacher models: where each one's file is, its size and what it is")
    sub.add_parser("levels", help="list the levels (BabyAI-* and MiniGrid-* ids)")
    args = parser.parse_args(argv)
    if args.command == "train":
        return _cmd_train(args)
    if args.command == "models":
        return _cmd_models()
    from workers.levels import action_subset, available_levels

    for level in available_levels():
        print(f"{level}\t{','.join(action_subset(level))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
