"""Subgoals: the teacher's plans in the level's own terms, and how the student is helped toward one.

A :class:`Subgoal` is a verb and an object named by colour and type: *go to* / *pick up* /
*open* / *put it next to* "the grey key". Which subgoals can be chosen in a state
(:func:`candidates`) follows from the mission, the objects the agent has seen this episode,
what it carries and the level's actions; the teacher picks one of them (or none), so a plan
is always valid by construction.

Progress toward the subgoal becomes help for the student that cannot change what is optimal:
potential-based reward shaping (Ng, Harada and Russell 1999), ``F = gamma * phi(s') - phi(s)``,
with

    phi(s) = scale * (subgoals achieved this episode + 0.5 * closeness to the current subgoal)

and ``phi = 0`` once the episode ends. Along any episode the shaping's discounted sum is
``-phi(s_0)``, whatever the student does, so the best policy for the shaped reward is the best
for the level's own. The "achieved" term is the bonus once a subgoal is reached (each subgoal
once an episode); the student pays it back when the episode ends, which is what keeps the
bonus from becoming a goal of its own. Closeness is ``1 - d / (width + height)`` for ``d`` the
length of the shortest path from the agent to a cell next to the subgoal's object, computed on
the simulator's grid: privileged information, used only at training time (docs/subgoals.md).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from minigrid.core.constants import COLOR_NAMES, IDX_TO_COLOR, IDX_TO_OBJECT

from workers.situation import Target, mission_targets

VERBS = ("goto", "pickup", "open", "putnext")
PHRASES = {"goto": "go to", "pickup": "pick up", "open": "open", "putnext": "put it next to"}
PORTABLE = ("key", "ball", "box")
OBJECT_TYPES = ("key", "ball", "box", "door", "goal")
CLOSENESS_WEIGHT = 0.5
"""phi's closeness term is at most this share of an achievement: reaching a subgoal is always
worth more than standing next to it."""


@dataclass(frozen=True)
class Subgoal:
    """A verb and an object; ``color`` None names any object of that type."""

    verb: str
    type: str
    color: str | None = None

    @property
    def text(self) -> str:
        return f"{PHRASES[self.verb]} the {self.color + ' ' if self.color else ''}{self.type}"

    @property
    def key(self) -> str:
        return f"{self.verb}:{self.color or ''}{self.type}"

    def names(self, obj: Any) -> bool:
        """Whether the simulator object ``obj`` is one this subgoal names."""
        return obj is not None and obj.type == self.type and (self.color is None or obj.color == self.color)

    def same_as(self, other: "Subgoal | None") -> bool:
        """The same verb and object, a missing colour matching any (plan accuracy)."""
        return (
            other is not None and self.verb == other.verb and self.type == other.type
            and (self.color is None or other.color is None or self.color == other.color)
        )

    @classmethod
    def from_text(cls, text: str) -> "Subgoal":
        """The subgoal whose ``text`` this is (hints carry plans as text)."""
        for verb, phrase in PHRASES.items():
            prefix = f"{phrase} the "
            if text.startswith(prefix):
                *color, obj = text[len(prefix):].split(" ")
                if obj in OBJECT_TYPES and (color == [] or (len(color) == 1 and color[0] in COLOR_NAMES)):
                    return cls(verb, obj, color[0] if color else None)
        raise ValueError(f"not a subgoal's text: {text!r}")

    @classmethod
    def from_key(cls, key: str) -> "Subgoal":
        verb, name = key.split(":", 1)
        for obj in OBJECT_TYPES:
            if name.endswith(obj):
                return cls(verb, obj, name[: -len(obj)] or None)
        raise ValueError(f"not a subgoal key: {key!r}")


def seen_objects(image: np.ndarray) -> set[tuple[str, str, int]]:
    """(type, colour, door state) of the objects in an egocentric view, the agent's own cell
    (what it carries) left out."""
    width, height = image.shape[:2]
    found = set()
    for x in range(width):
        for y in range(height):
            if (x, y) == (width // 2, height - 1):
                continue
            obj = IDX_TO_OBJECT[int(image[x, y, 0])]
            if obj in OBJECT_TYPES:
                found.add((obj, IDX_TO_COLOR[int(image[x, y, 1])], int(image[x, y, 2]) if obj == "door" else 0))
    return found


@dataclass(frozen=True)
class PlanState:
    """What a plan depends on (the teacher is asked once per ``key``): the mission, what the
    agent carries, and the objects it has seen this episode, doors with their last seen state."""

    mission: str
    carrying: tuple[str, str] | None
    seen: tuple[tuple[str, str, int], ...]
    """(type, colour, door state: 0 open, 1 closed, 2 locked), sorted."""
    actions: tuple[str, ...]

    @property
    def key(self) -> str:
        carried = f"{self.carrying[1]} {self.carrying[0]}" if self.carrying else "-"
        seen = ",".join(f"{c} {t}{'/' + 'ocl'[s] if t == 'door' else ''}" for t, c, s in self.seen)
        return f"{self.mission}|{carried}|{seen}"

    @property
    def text(self) -> str:
        """The state in words, for the teacher's prompt."""
        states = {0: "open", 1: "closed", 2: "locked"}
        things = [f"a {states[s]} {c} door" if t == "door" else f"a {c} {t}" for t, c, s in self.seen]
        return (
            f"Mission: {self.mission}. "
            f"Seen so far: {', '.join(things) if things else 'nothing'}. "
            f"Carrying: {'the ' + self.carrying[1] + ' ' + self.carrying[0] if self.carrying else 'nothing'}."
        )


_COLOUR_WORD = re.compile(r"\b(" + "|".join(COLOR_NAMES) + r")\b")


@dataclass(frozen=True)
class Renaming:
    """A plan state with its colours renamed ``c0``, ``c1``... in order of appearance (the
    mission's first, then what is carried, then what was seen, sorted by type and colour name):
    plan states that differ only by their colours share a ``key`` (where two objects of a type
    differ only by colour, some are not pooled: safe, if less than could be). The student's feedback is pooled over them, since what works
    with a blue key and a blue door works with a red key and a red door."""

    key: str
    colours: tuple[str, ...]
    """The state's colours; ``c<i>`` stands for ``colours[i]``."""

    @classmethod
    def of(cls, state: PlanState) -> "Renaming":
        order: list[str] = []
        for colour in _COLOUR_WORD.findall(state.mission):
            order.append(colour)
        if state.carrying:
            order.append(state.carrying[1])
        order += [c for _, c, _ in state.seen]
        colours = tuple(dict.fromkeys(order))
        names = {c: f"c{i}" for i, c in enumerate(colours)}
        mission = _COLOUR_WORD.sub(lambda m: names[m.group(1)], state.mission)
        renamed = PlanState(
            mission,
            (state.carrying[0], names[state.carrying[1]]) if state.carrying else None,
            tuple(sorted((t, names[c], d) for t, c, d in state.seen)),
            state.actions,
        )
        return cls(renamed.key, colours)

    def abstract(self, subgoal: Subgoal) -> Subgoal:
        if subgoal.color is None or subgoal.color not in self.colours:
            return subgoal
        return Subgoal(subgoal.verb, subgoal.type, f"c{self.colours.index(subgoal.color)}")

    def concrete(self, subgoal: Subgoal) -> Subgoal:
        if subgoal.color is None or not subgoal.color.startswith("c") or not subgoal.color[1:].isdigit():
            return subgoal
        index = int(subgoal.color[1:])
        return Subgoal(subgoal.verb, subgoal.type, self.colours[index]) if index < len(self.colours) else subgoal


def candidates(state: PlanState) -> tuple[Subgoal, ...]:
    """The subgoals that can be chosen in ``state``: every verb the level's actions allow, on
    the mission's objects, the objects seen and the key of each door seen locked, less what is
    already done (a door seen open, an object carried); "go to" only where no other verb applies
    to the object, or the mission is to go somewhere. Sorted, so that the same state always offers the same list."""
    objects: set[tuple[str, str | None]] = {(t, c) for t, c, _ in state.seen}
    named: list[Target] = list(mission_targets(state.mission))
    for target in named:
        if not any(t == target.type and (target.color is None or c == target.color) for t, c in objects):
            objects.add((target.type, target.color))
    door_state = {(t, c): s for t, c, s in state.seen if t == "door"}
    # A locked door implies its key: the one object a plan may name before it is seen.
    objects |= {("key", c) for (_, c), s in door_state.items() if s == 2}
    going = state.mission.lower().startswith("go to")
    found: set[Subgoal] = set()
    for obj, color in objects:
        if state.carrying == (obj, color):
            continue
        acts = set()
        if obj in PORTABLE and "pickup" in state.actions and state.carrying is None:
            acts.add(Subgoal("pickup", obj, color))
        if obj == "door" and "toggle" in state.actions and door_state.get((obj, color)) != 0:
            acts.add(Subgoal("open", obj, color))
        # Going to an object is part of picking it up or opening it: offered on its own only
        # where neither is possible, or where the mission is to go somewhere.
        if going or not acts:
            acts.add(Subgoal("goto", obj, color))
        found |= acts
        if state.carrying is not None and "drop" in state.actions and obj != "door":
            found.add(Subgoal("putnext", obj, color))
    return tuple(sorted(found, key=lambda s: (s.verb, s.type, s.color or "")))


def achieved(env: Any, subgoal: Subgoal, dropped: Any = None) -> bool:
    """Whether ``subgoal`` holds in the simulator state of ``env`` (a minigrid env, unwrapped):
    facing its object (as BabyAI's "go to" checks), carrying it, its door open, or ``dropped``
    (the object the agent last put down) lying next to it."""
    if subgoal.verb == "pickup":
        return subgoal.names(env.carrying)
    if subgoal.verb == "goto":
        return subgoal.names(env.grid.get(*env.front_pos))
    if subgoal.verb == "open":
        return any(subgoal.names(obj) and obj.is_open for obj, _ in _objects(env))
    if subgoal.verb == "putnext":
        if dropped is None or env.carrying is not None or dropped.cur_pos is None:
            return False
        x, y = dropped.cur_pos
        neighbours = [env.grid.get(x + dx, y + dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        return any(obj is not dropped and subgoal.names(obj) for obj in neighbours)
    raise ValueError(f"unknown verb {subgoal.verb!r}")


def _objects(env: Any):
    for x in range(env.grid.width):
        for y in range(env.grid.height):
            obj = env.grid.get(x, y)
            if obj is not None and obj.type in OBJECT_TYPES:
                yield obj, (x, y)


def _passable(cell: Any) -> bool:
    # A closed door that is not locked opens with one toggle: the way goes through it.
    return cell is None or cell.type in ("goal", "floor") or (cell.type == "door" and not cell.is_locked)


STEPS = ((1, 0), (0, 1), (-1, 0), (0, -1))
"""minigrid's directions: 0 east (+x), 1 south (+y), 2 west, 3 north."""
FINAL_ACTION = {"goto": None, "pickup": "pickup", "open": "toggle", "putnext": "drop"}
FINAL_ACTIONS = frozenset(a for a in FINAL_ACTION.values() if a)
"""The actions that change the grid (after one, the way to a subgoal is found again)."""


class Route:
    """The way to a subgoal on the simulator's grid, from anywhere: for every cell, the steps
    (moves, not turns) to a cell from which the agent can face what the subgoal needs (its
    object; for "put it next to", an empty cell beside the object). Computed once per grid:
    it holds until an object or a door changes (a pickup, a drop, a toggle)."""

    def __init__(self, env: Any, subgoal: Subgoal):
        self.subgoal = subgoal
        self.scale = env.grid.width + env.grid.height
        objects = {pos for obj, pos in _objects(env) if subgoal.names(obj) and obj is not env.carrying}
        if subgoal.verb == "putnext":
            objects = {n for x, y in objects for dx, dy in STEPS if env.grid.get(*(n := (x + dx, y + dy))) is None}
        self.faced = objects
        stands = {(x + dx, y + dy) for x, y in objects for dx, dy in STEPS}
        agent = tuple(int(v) for v in env.agent_pos)
        stands = {c for c in stands if c == agent or (self._inside(env, c) and _passable(env.grid.get(*c)))}
        self.distance: dict[tuple[int, int], int] = {c: 0 for c in stands}
        frontier = deque(stands)
        while frontier:
            x, y = cell = frontier.popleft()
            for dx, dy in STEPS:
                nxt = (x + dx, y + dy)
                if nxt in self.distance or not self._inside(env, nxt):
                    continue
                if nxt == agent or _passable(env.grid.get(*nxt)):
                    self.distance[nxt] = self.distance[cell] + 1
                    frontier.append(nxt)

    @staticmethod
    def _inside(env: Any, cell: tuple[int, int]) -> bool:
        return 0 <= cell[0] < env.grid.width and 0 <= cell[1] < env.grid.height

    def steps(self, env: Any) -> int | None:
        """Moves from the agent to the subgoal; None when there is no way (or no object)."""
        return self.distance.get((int(env.agent_pos[0]), int(env.agent_pos[1])))

    def closeness(self, env: Any) -> float:
        """1 where the agent can face the subgoal, falling to 0 at ``width + height`` moves (or no way)."""
        d = self.steps(env)
        return 0.0 if d is None else max(0.0, 1.0 - d / self.scale)

    def final_action_here(self, env: Any) -> str | None:
        """The subgoal's own action if the agent stands where the way ends, facing what the
        subgoal needs; else None."""
        here = (int(env.agent_pos[0]), int(env.agent_pos[1]))
        front = tuple(int(v) for v in env.front_pos)
        return FINAL_ACTION[self.subgoal.verb] if self.distance.get(here) == 0 and front in self.faced else None

    def action(self, env: Any) -> str | None:
        """The action that starts a shortest way to the subgoal (its own action, pickup, toggle or
        drop, once the agent faces what it needs); None when there is no way, or nothing to do."""
        here = (int(env.agent_pos[0]), int(env.agent_pos[1]))
        d = self.distance.get(here)
        if d is None:
            return None
        front = tuple(int(v) for v in env.front_pos)
        if d == 0 and front in self.faced:
            return FINAL_ACTION[self.subgoal.verb]
        best = None
        for turn, direction in ((0, env.agent_dir), (1, (env.agent_dir + 1) % 4), (-1, (env.agent_dir - 1) % 4), (2, (env.agent_dir + 2) % 4)):
            dx, dy = STEPS[direction]
            cell = (here[0] + dx, here[1] + dy)
            closer = self.distance.get(cell, d + 1) < d or (d == 0 and cell in self.faced)
            if closer:
                best = turn
                break
        if best is None:
            return None
        if best == 0:
            cell = env.grid.get(*front)
            return "toggle" if cell is not None and cell.type == "door" and not cell.is_open else "forward"
        return "left" if best == -1 else "right"


def bot_subgoal(bot: Any) -> Subgoal | None:
    """The BabyAI bot's current subgoal in this vocabulary: from the top of its stack, the
    first step that names an object, with the action under it ("go next to the key" over
    "pick up" is "pick up the key"). Exploring and moving out of the way are skipped: they name
    no object. None when nothing on the stack names one."""
    from minigrid.utils.baby_ai_bot import DropSubgoal, GoNextToSubgoal, OpenSubgoal, PickupSubgoal

    stack = bot.stack
    env = bot.mission.unwrapped
    for i in range(len(stack) - 1, -1, -1):
        step = stack[i]
        below = stack[i - 1] if i > 0 else None
        if isinstance(step, GoNextToSubgoal):
            named = _described(env, step.datum)
            if named is None:
                continue
            if step.reason == "PutNext":
                return Subgoal("putnext", *named)
            if isinstance(below, PickupSubgoal):
                return Subgoal("pickup", *named)
            if isinstance(below, OpenSubgoal) and named[0] == "door":
                return Subgoal("open", *named)
            return Subgoal("goto", *named)
        front = env.grid.get(*env.front_pos)
        if isinstance(step, PickupSubgoal) and front is not None:
            return Subgoal("pickup", front.type, front.color)
        if isinstance(step, OpenSubgoal) and front is not None and front.type == "door":
            return Subgoal("open", "door", front.color)
        if isinstance(step, DropSubgoal):
            continue
    return None


def _described(env: Any, datum: Any) -> tuple[str, str | None] | None:
    """(type, colour) of what a bot's "go next to" aims at: an object, a description (its
    colour None if the mission leaves it open), or whatever lies at a position (None for an
    empty cell: a place to drop something, or to explore)."""
    from minigrid.envs.babyai.core.verifier import ObjDesc

    if isinstance(datum, ObjDesc):
        return (datum.type, datum.color) if datum.type in OBJECT_TYPES else None
    obj = datum if hasattr(datum, "type") else env.grid.get(*datum)
    return (obj.type, obj.color) if obj is not None and obj.type in OBJECT_TYPES else None
