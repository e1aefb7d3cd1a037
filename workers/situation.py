"""Situation abstraction: the agent's 7x7 view and mission, as the teacher reads them.

An observation becomes

* ``text``: a few sentences in the agent's own frame (what is ahead, left and right of it,
  where the mission's objects are relative to it, what it carries), for the LLM; and
* ``key``: a short string that names the situation for caching answers and collecting the
  student's feedback. Two observations with the same key get the same text, so an answer
  cached by key is exactly the answer to that text.

Distances are bucketed (1, 2, 3 or "far"), so that GoToRedBallNoDists has a few dozen
situations rather than hundreds: the LLM is asked once per situation (and again only when the
student's feedback for it changes), which keeps its cost small next to training.

minigrid's view layout: ``image[x, y]`` with the agent at ``(3, 6)`` facing towards ``y = 0``;
``x`` grows to the agent's right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from minigrid.core.constants import COLOR_TO_IDX, IDX_TO_COLOR, IDX_TO_OBJECT, OBJECT_TO_IDX

OBJECT_WORDS = ("ball", "box", "key", "door", "goal")
_MISSION_OBJECT = re.compile(
    r"\b(?:(" + "|".join(COLOR_TO_IDX) + r")\s+)?(" + "|".join(OBJECT_WORDS) + r")\b"
)
_DOOR_STATES = {0: "open", 1: "closed", 2: "locked"}


@dataclass(frozen=True)
class Target:
    """An object the mission names; ``color`` None means any colour."""

    color: str | None
    type: str

    def matches(self, obj: str, color: str) -> bool:
        return obj == self.type and (self.color is None or self.color == color)

    def phrase(self) -> str:
        return f"the {self.color + ' ' if self.color else ''}{self.type}"


@dataclass(frozen=True)
class Situation:
    """What the teacher is told (``text``) and the name under which the answer is kept (``key``)."""

    key: str
    text: str
    actions: tuple[str, ...]


def mission_targets(mission: str) -> tuple[Target, ...]:
    """Objects named in the mission, in order of mention, without repeats."""
    seen: list[Target] = []
    for color, obj in _MISSION_OBJECT.findall(mission.lower()):
        target = Target(color or None, obj)
        if target not in seen:
            seen.append(target)
    return tuple(seen)


def target_planes(targets: tuple[Target, ...], shape: tuple[int, int]) -> np.ndarray:
    """Two constant planes (object index, colour index + 1) of the mission's first target: the
    student's view of the mission. Zeros when the mission names no object."""
    planes = np.zeros((*shape, 2), np.uint8)
    if targets:
        planes[..., 0] = OBJECT_TO_IDX[targets[0].type]
        planes[..., 1] = COLOR_TO_IDX[targets[0].color] + 1 if targets[0].color else 0
    return planes


def _cell_words(cell: np.ndarray) -> str:
    obj = IDX_TO_OBJECT[int(cell[0])]
    color = IDX_TO_COLOR[int(cell[1])]
    if obj in ("empty", "floor"):
        return "empty floor"
    if obj == "unseen":
        return "something you cannot see"
    if obj == "wall":
        return "a wall"
    if obj == "door":
        return f"a {_DOOR_STATES.get(int(cell[2]), 'closed')} {color} door"
    if obj in ("goal", "lava"):
        return f"the {obj}"
    return f"a {color} {obj}"


def _cell_code(cell: np.ndarray) -> str:
    obj = IDX_TO_OBJECT[int(cell[0])]
    if obj in ("empty", "floor"):
        return "."
    if obj == "door":
        return "d" + "ocl"[int(cell[2])] if int(cell[2]) in (0, 1, 2) else "d"
    return obj[:2] + str(int(cell[1]))


def _bucket(n: int) -> str:
    return str(n) if n <= 3 else "far"


def _steps(n: int, unit: str) -> str:
    if n > 3:
        return f"more than 3 {unit}s"
    return f"{n} {unit}{'s' if n > 1 else ''}"


def _locate(image: np.ndarray, target: Target) -> tuple[int, int] | None:
    """(steps ahead, steps to the right) of the nearest visible instance of ``target``."""
    width, height = image.shape[:2]
    me = (width // 2, height - 1)
    hits = image[..., 0] == OBJECT_TO_IDX[target.type]
    if target.color is not None:
        hits &= image[..., 1] == COLOR_TO_IDX[target.color]
    hits[me] = False  # the agent's own cell shows what it carries, not what it sees
    xs, ys = np.nonzero(hits)
    if len(xs) == 0:
        return None
    # Nearest by steps; ties go to the first in (x, y) order, as a scan of the view would.
    nearest = int(np.argmin(np.abs(me[1] - ys) + np.abs(xs - me[0])))
    return int(me[1] - ys[nearest]), int(xs[nearest] - me[0])


def _where(target: Target, rel: tuple[int, int] | None) -> tuple[str, str]:
    """(sentence, key part) for a target's position relative to the agent."""
    name = target.phrase()
    if rel is None:
        return f"You do not see {name}.", "none"
    ahead, right = rel
    side = "right" if right > 0 else "left"
    if ahead == 1 and right == 0:
        return f"{name.capitalize()} is right in front of you.", "front"
    if ahead == 0:
        return f"{name.capitalize()} is {_steps(abs(right), 'step')} to your {side}, level with you.", f"0{side[0]}{_bucket(abs(right))}"
    if right == 0:
        return f"{name.capitalize()} is {_steps(ahead, 'step')} straight ahead.", f"{_bucket(ahead)}c"
    return (
        f"{name.capitalize()} is {_steps(ahead, 'step')} ahead and {_steps(abs(right), 'step')} to your {side}.",
        f"{_bucket(ahead)}{side[0]}{_bucket(abs(right))}",
    )


def describe(image: np.ndarray, mission: str, actions: tuple[str, ...]) -> Situation:
    """The situation of an egocentric view ``image`` (W x H x 3, minigrid encoding)."""
    width, height = image.shape[:2]
    mx, my = width // 2, height - 1
    ahead, left, right = image[mx, my - 1], image[mx - 1, my], image[mx + 1, my]
    carried = image[mx, my]
    sentences = [
        f"Your mission: {mission}.",
        f"In front of you: {_cell_words(ahead)}. On your left: {_cell_words(left)}. "
        f"On your right: {_cell_words(right)}.",
    ]
    key_parts = [mission, _cell_code(ahead), _cell_code(left), _cell_code(right)]
    if IDX_TO_OBJECT[int(carried[0])] not in ("empty", "unseen", "floor"):
        sentences.append(f"You are carrying {_cell_words(carried)}.")
        key_parts.append("c" + _cell_code(carried))
    for target in mission_targets(mission)[:3]:
        sentence, part = _where(target, _locate(image, target))
        sentences.append(sentence)
        key_parts.append(f"{target.color or ''}{target.type}:{part}")
    return Situation(key="|".join(key_parts), text=" ".join(sentences), actions=actions)
