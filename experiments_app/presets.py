"""Launch presets: named starting points for an experiment's seeds and hyperparameters, derived
from what the engine and the study already declare (RunConfig's defaults, ``study/spec.py``'s
levels and settings), and the defaults that follow the chosen level.

What follows the level: on a level of the study, its return threshold, and for the study cell
its frame budget (the teacher mode's own, shorter one included). Other levels keep the engine's
defaults. Whether a preset's values can run is, as for any launch, ``RunConfig.problems``'s
answer (through ``hyperparameters.experiment_problems``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from experiments_app.hyperparameters import hyperparameter_defaults
from study.spec import FULL, Level, RunKey
from workers.config import Mode


@dataclass(frozen=True)
class Preset:
    """A named set of seeds and hyperparameters; ``hyperparameters_for`` gives its values on a level."""

    key: str
    label: str
    description: str
    """One sentence for the launch page: what it runs and why."""
    seeds: str
    """As the launch form's seeds field takes them."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Hyperparameters it sets; every other one keeps the engine's default."""
    study_budget: bool = False
    """Whether its frame budget is the study's for the level (and mode)."""


QUICK = Preset(
    "quick",
    "Quick look",
    "About a minute: 16 rollouts with a small evaluation and teacher measurement, to see the loop work.",
    seeds="0",
    settings={
        # Bidirectional trains at 420-670 steps/s on 2 cores (benchmarks/results/modes.txt, two
        # runs at a time, and modes_fps.txt, alone): 25-40 s for 16 rollouts of 1,024 frames.
        # Loading the teacher, answering the probes and the final evaluation took 20 s of an
        # 8,192-frame run at 200 probes and 50 episodes (modes_fps.json); a quarter of the probes
        # and a fifth of the episodes keep that part short, and one evaluation halfway shows
        # the greedy return rising.
        "total_timesteps": 16_384,
        "eval_interval": 8_192,
        "eval_episodes": 10,
        "probe_states": 50,
    },
)
PAPER = Preset(
    "paper",
    "The paper's setting",
    "The engine's defaults (workers/config.py): 100,000 frames, an evaluation every 25,000, "
    "teacher accuracy on 200 probe states.",
    seeds="0",
)
STUDY = Preset(
    "study",
    "A study cell",
    f"What make study runs for one level and mode: {len(FULL.seeds)} seeds, the study's frame budget "
    "and threshold on its levels, one evaluation at the end, no live frames.",
    seeds=", ".join(str(seed) for seed in FULL.seeds),
    settings=dict(FULL.settings),
    study_budget=True,
)
PRESETS: dict[str, Preset] = {preset.key: preset for preset in (QUICK, PAPER, STUDY)}
DEFAULT_PRESET = PAPER
"""The one an empty launch form shows: the engine's defaults, as the command line has them."""
STUDY_LEVELS: dict[str, Level] = {level.env_id: level for level in FULL.levels}


def hyperparameters_for(*, preset: Preset, env_id: str, mode: str) -> dict[str, Any]:
    """Every hyperparameter of a launch from ``preset`` on ``env_id`` in ``mode``: the engine's
    defaults, the preset's settings, then what follows the level (module docstring). Any
    ``env_id`` and ``mode`` are taken: a level outside the study keeps the defaults."""
    values = {**hyperparameter_defaults(), **preset.settings}
    level = STUDY_LEVELS.get(env_id)
    if level is not None:
        values["return_threshold"] = level.return_threshold
        if preset.study_budget:
            values["total_timesteps"] = RunKey(level, mode, FULL.seeds[0]).timesteps
    return values


def preset_table() -> dict[str, Any]:
    """The presets as the launch page's script applies them (JSON-able): per preset its seeds,
    its values on a level outside the study, and, per level of the study and mode, the
    values that differ there."""
    table: dict[str, Any] = {}
    for preset in PRESETS.values():
        base = hyperparameters_for(preset=preset, env_id="", mode=Mode.BIDIRECTIONAL.value)
        levels: dict[str, dict[str, dict[str, Any]]] = {}
        for env_id in STUDY_LEVELS:
            for mode in Mode:
                values = hyperparameters_for(preset=preset, env_id=env_id, mode=mode.value)
                levels.setdefault(env_id, {})[mode.value] = {k: v for k, v in values.items() if base[k] != v}
        # A preset says how long and how closely to train, not what the teacher gives: the
        # guidance kind chosen beside the mode stays as it is.
        base = {k: v for k, v in base.items() if k != "guidance_kind"}
        table[preset.key] = {"seeds": preset.seeds, "values": base, "levels": levels}
    return table


def preset_budgets(*, env_id: str, mode: str) -> list[tuple[Preset, int]]:
    """Each preset with its frame budget on ``env_id`` in ``mode``."""
    return [
        (preset, hyperparameters_for(preset=preset, env_id=env_id, mode=mode)["total_timesteps"])
        for preset in PRESETS.values()
    ]
