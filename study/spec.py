"""What a study runs, declared in one place: levels (each with its return threshold, frame
budget, modes and guidance kind), seeds and the RunConfig settings shared by every run.

A study is every level's modes x the seeds; each element is one ``workers.engine`` run with its
own directory ``<out>/<level>/<mode>/seed-<seed>/``. ``SPECS`` holds the named
studies that ``python -m study`` and ``make study`` / ``make study-quick`` run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from workers.config import GuidanceKind, Mode, RunConfig

ALL_MODES: tuple[str, ...] = tuple(m.value for m in Mode)
"""Every mode, with action guidance."""
SUBGOALS = "-subgoals"
"""A study's mode name is a Mode's value, with this suffix for subgoal guidance
("bidirectional-subgoals"); without it, the guidance kind is the study's settings' (by default
the engine's, actions)."""


def arm_fields(mode: str) -> dict[str, str]:
    """The RunConfig fields a study's mode name stands for."""
    if mode.endswith(SUBGOALS):
        return {"mode": mode[: -len(SUBGOALS)], "guidance_kind": GuidanceKind.SUBGOALS.value}
    return {"mode": mode}


def arm_name(mode: str, guidance_kind: str) -> str:
    """The study's mode name of ``mode`` with ``guidance_kind`` (the inverse of ``arm_fields``;
    PPO alone and the teacher alone have no guidance kind)."""
    if guidance_kind == GuidanceKind.SUBGOALS.value and mode not in (Mode.PPO.value, Mode.TEACHER.value):
        return mode + SUBGOALS
    return mode


def arm_kind(arm: str) -> str:
    """The guidance kind a study's mode name stands for (actions for PPO and the teacher alone)."""
    return arm_fields(arm).get("guidance_kind", GuidanceKind.ACTIONS.value)


def base_mode(arm: str) -> str:
    """The Mode value of a study's mode name."""
    return arm_fields(arm)["mode"]


@dataclass(frozen=True)
class Level:
    """One level of the study and what counts as solving it within its budget."""

    env_id: str
    """A BabyAI-* level (the BabyAI bot plays only those: oracle mode and teacher accuracy need it)."""
    return_threshold: float
    """Frames to threshold: the first frame at which the training return (mean of the last 100
    episodes) reaches this. Runs that never do are censored at the budget."""
    total_timesteps: int
    """Frame budget of every run on this level; a multiple of one rollout."""
    why: str
    """Why the level is in the study (shown in the report)."""
    teacher_timesteps: int | None = None
    """Frame budget of the ``teacher`` mode (None: ``total_timesteps``). The teacher alone
    learns nothing, so more frames do not change its return, only its LLM bill; its frames to
    threshold are still censored at ``total_timesteps``."""
    modes: tuple[str, ...] | None = None
    """This level's modes (None: the study's), each a mode name as in ``StudySpec.modes``."""
    guidance_kind: str = GuidanceKind.ACTIONS.value
    """The guidance kind that works best on this level: its bidirectional mode is the one the
    report tests against the others and whose speed-up and share of the oracle's gain it
    headlines."""

    def arm(self, mode: str) -> str:
        """``mode`` (a Mode value) with this level's guidance kind."""
        return arm_name(mode, self.guidance_kind)


@dataclass(frozen=True)
class StudySpec:
    """A named study: levels x modes x seeds through the same engine, with shared settings."""

    name: str
    """Names the output directory (var/study/<name>) and the report."""
    description: str
    """One sentence for the report: what the study is for."""
    levels: tuple[Level, ...]
    """The levels, in report order."""
    modes: tuple[str, ...] = ALL_MODES
    """Modes to compare on a level that names none of its own; the level's bidirectional mode
    (``Level.guidance_kind``) is tested against each of the others."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Seeds per (level, mode); the same seeds for every mode, so seed i sees the same layouts."""
    settings: dict[str, Any] = field(default_factory=dict)
    """RunConfig fields set for every run (anything else keeps the engine's default)."""

    def config(self, level: Level, mode: str, seed: int) -> RunConfig:
        """The engine's configuration of one run."""
        return RunConfig.from_dict(
            {
                **self.settings,
                "env_id": level.env_id,
                **arm_fields(mode),
                "seed": seed,
                "total_timesteps": RunKey(level, mode, seed).timesteps,
                "return_threshold": level.return_threshold,
            }
        )

    def runs(self) -> list["RunKey"]:
        """Every run, ordered seed-major (all levels and modes of seed 0, then seed 1, ...), so
        that runs in flight mix fast and slow modes and a partial study covers every cell."""
        return [RunKey(level, mode, seed) for seed in self.seeds for level in self.levels for mode in self.modes_of(level)]

    def modes_of(self, level: Level) -> tuple[str, ...]:
        """The modes run on ``level``, in report order."""
        return level.modes or self.modes

    def level(self, env_id: str) -> Level:
        return next(level for level in self.levels if level.env_id == env_id)

    def validate(self) -> None:
        """Raise ValueError for a spec the engine would reject, before any run starts."""
        for level in self.levels:
            for mode in self.modes_of(level):
                config = self.config(level, mode, self.seeds[0])  # unknown settings fail here
                config.validate()
            for budget in {level.total_timesteps, level.teacher_timesteps or level.total_timesteps}:
                if budget % config.rollout_frames:
                    raise ValueError(
                        f"{level.env_id}: budget {budget} is not a multiple of a rollout ({config.rollout_frames})"
                    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "levels": [vars(level) for level in self.levels],
            "modes": list(self.modes),
            "seeds": list(self.seeds),
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "StudySpec":
        return cls(
            name=raw["name"],
            description=raw["description"],
            # A spec stored before levels had modes of their own has neither key (the defaults).
            levels=tuple(Level(**{**level, "modes": tuple(level["modes"]) if level.get("modes") else None})
                         for level in raw["levels"]),
            modes=tuple(raw["modes"]),
            seeds=tuple(raw["seeds"]),
            settings=dict(raw["settings"]),
        )


@dataclass(frozen=True)
class RunKey:
    """One run of a study."""

    level: Level
    mode: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.level.env_id}/{self.mode}/seed-{self.seed}"

    @property
    def timesteps(self) -> int:
        """This run's frame budget."""
        if self.mode == Mode.TEACHER.value and self.level.teacher_timesteps:
            return self.level.teacher_timesteps
        return self.level.total_timesteps

    def directory(self, out: Path) -> Path:
        return out / self.level.env_id / self.mode / f"seed-{self.seed}"


SHARED_SETTINGS: dict[str, Any] = {
    # Nobody watches a study run: live frames would only fill events.jsonl.
    "frame_interval_s": 0.0,
    # Hints are the failure analysis's only view of what the teacher says per situation; five a
    # second cover most situations a run meets (about 1.5 MB of events per 60k-frame run).
    "hint_interval_s": 0.2,
    # Runs share the cores (and a busy machine): an LLM call slower than the engine's default
    # 20 s would drop the teacher and turn the run into PPO alone (or fail it at the start).
    "teacher_timeout_s": 120.0,
    # One evaluation at the end: 50 held-out episodes, each played greedy and sampled.
    "eval_interval": 0,
    "eval_episodes": 50,
}

SUBGOAL_ARMS = (
    Mode.PPO.value,
    # The teacher alone plays actions (a plan is not an action): its row measures the LLM.
    Mode.TEACHER.value,
    *(arm_name(m.value, GuidanceKind.SUBGOALS.value) for m in (Mode.UNIDIRECTIONAL, Mode.BIDIRECTIONAL, Mode.ORACLE)),
)
"""Every mode with subgoal guidance."""

NO_DISTS = Level(
    "BabyAI-GoToRedBallNoDists-v0",
    return_threshold=0.9,
    total_timesteps=40_960,
    teacher_timesteps=4_096,
    why="the paper's level: one room, the red ball alone; PPO alone reaches 0.9 in about 32k frames, so the "
    "question is whether guidance gets there sooner. Action guidance is the paper's; the bidirectional and "
    "oracle modes with subgoal guidance compare the two kinds where the plan is trivial (the mission itself)",
    modes=(*ALL_MODES, arm_name("bidirectional", "subgoals"), arm_name("oracle", "subgoals")),
)
OPEN_RED_DOOR = Level(
    "BabyAI-OpenRedDoor-v0",
    return_threshold=0.8,
    total_timesteps=40_960,
    teacher_timesteps=2_048,
    why="open the red door of a room with four doors (the bot scores 0.91): PPO alone reaches 0.8 in about "
    "22k frames, the bot's subgoals in about 4k (benchmarks/results/subgoals.txt); the LLM names the right "
    "subgoal zero-shot, so this measures the plan's help, not the feedback",
    modes=SUBGOAL_ARMS,
    guidance_kind=GuidanceKind.SUBGOALS.value,
)
UNLOCK_LOCAL = Level(
    "BabyAI-UnlockLocal-v0",
    return_threshold=0.8,
    total_timesteps=40_960,
    teacher_timesteps=2_048,
    why="pick up the key, then open the locked door: PPO alone stays near 0.1 for 61k frames, the bot's "
    "subgoals reach 0.8 in 11-15k; zero-shot the LLM opens the door before taking the key, and only the "
    "student's feedback (the door did not open) corrects the plan: the level where bidirectional should beat "
    "unidirectional",
    modes=SUBGOAL_ARMS,
    guidance_kind=GuidanceKind.SUBGOALS.value,
)

# The teacher alone answers every new situation before it acts: on the two subgoal levels, with
# their many situations, it runs 2,048 frames (a 1,024-frame run took 81 s on UnlockLocal).
# The budgets are where the oracle reaches the threshold in every seed measured so far with
# room to spare (NoDists ~7k, OpenRedDoor ~4k, UnlockLocal 11-15k frames) and what 85 runs on
# two cores allow in 2.5 hours (a subgoal run trains ~170 frames/s with another run beside it,
# an action-guided one ~450). PPO alone never reaches 0.8 on UnlockLocal: its frames there are
# censored at the budget, so the speed-up is a lower bound.
FULL = StudySpec(
    name="full",
    description="The comparison of issue 17: every mode with the guidance kind that works best on each level, "
    "the other kind on the paper's level, 5 seeds, 3 levels.",
    levels=(NO_DISTS, OPEN_RED_DOOR, UNLOCK_LOCAL),
    # 100 probe states: teacher accuracy to about +-0.05 per run; most of the LLM's calls are
    # the probes' (re-asked whenever the feedback for their situation changes).
    settings={**SHARED_SETTINGS, "probe_states": 100},
)

QUICK = StudySpec(
    name="quick",
    description="A smoke-scale run of the same machinery (short budgets, 2 seeds): it checks the "
    "pipeline end to end; its numbers are no evidence either way.",
    levels=tuple(replace(level, total_timesteps=4096, teacher_timesteps=1024) for level in FULL.levels),
    seeds=(0, 1),
    # Fewer probe states and evaluation episodes: the LLM's passes over the probes (zero-shot
    # and at the end) and the final evaluation dominate a run this short.
    settings={**SHARED_SETTINGS, "probe_states": 20, "eval_episodes": 10},
)

SPECS: dict[str, StudySpec] = {spec.name: spec for spec in (FULL, QUICK)}
