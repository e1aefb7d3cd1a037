"""The student's feedback to the teacher: the other half of the bi-directional loop.

What the student knows that the teacher does not is how its actions *turned out*. After every
rollout the engine hands this module, for each sample, the situation it was taken in, the action
the student took and the action's GAE advantage (how much better than the student's own value
estimate the action turned out to be). The memory keeps, per situation and action, the number
of tries and the mean advantage (an exponential average once there are many tries, because the
advantages of an improving student drift).

From that, a *verdict*: in a situation where at least two actions have each been tried
``min_visits`` times, the action with the highest mean advantage, provided it beats the
runner-up by ``margin``. A verdict is sticky: it changes only when the ranking flips.

Once the student has made up its mind in a situation (one action is at least
``decided_share`` of its last ``behaviour_window`` tries there, and it has tried at least
``decided_min_tries`` times), the verdict is that action instead. By then its policy has
absorbed every advantage it has seen, while the latest advantages of a good student are all
near zero and rank its actions by noise: late in long runs, advantage-ranked verdicts agree
with the BabyAI bot far less often than the student's decided actions do (docs/feedback.md,
"Verdicts late in a run").

The verdict reaches the teacher as one sentence in its prompt for that situation (see
``FeedbackMemory.sentence``). Since the teacher caches answers by (situation, sentence), a new
or changed verdict makes the teacher answer that situation again, and only that one. The
teacher's corrected answer then guides the student through the guidance loss. docs/feedback.md
describes the loop and what it measurably does to the teacher's accuracy.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np


@dataclass
class _Tally:
    count: np.ndarray
    mean: np.ndarray
    recent: deque[int]
    """The student's latest actions here, oldest first (at most ``behaviour_window``)."""
    verdict: int | None = None


@dataclass
class FeedbackMemory:
    """Per-situation action statistics from the student's rollouts, and the verdicts they give."""

    actions: tuple[str, ...]
    min_visits: int = 8
    margin: float = 0.02
    max_weight_visits: int = 200
    """Past this many tries, new advantages weigh 1/max_weight_visits (an exponential average)."""
    behaviour_window: int = 200
    """How many of the student's latest actions in a situation say what it has decided there."""
    decided_share: float = 0.8
    """The student has decided on an action that is at least this share of that window..."""
    decided_min_tries: int = 32
    """...once the window holds at least this many tries."""
    _tallies: dict[str, _Tally] = field(default_factory=dict)

    def update(self, keys: Iterable[str], actions: np.ndarray, advantages: np.ndarray) -> set[str]:
        """Fold one rollout in. Returns the situations whose verdict changed."""
        changed: set[str] = set()
        touched: set[str] = set()
        for key, action, advantage in zip(keys, actions.ravel(), advantages.ravel()):
            tally = self._tallies.get(key)
            if tally is None:
                tally = self._tallies[key] = self._new_tally()
            a = int(action)
            tally.count[a] += 1
            tally.recent.append(a)
            weight = 1.0 / min(tally.count[a], self.max_weight_visits)
            tally.mean[a] += weight * (float(advantage) - tally.mean[a])
            touched.add(key)
        for key in touched:
            tally = self._tallies[key]
            verdict = self._judge(tally)
            if verdict is not None and verdict != tally.verdict:
                tally.verdict = verdict
                changed.add(key)
        return changed

    def _new_tally(self, recent: Iterable[int] = ()) -> _Tally:
        n = len(self.actions)
        return _Tally(np.zeros(n, np.int64), np.zeros(n, np.float64), deque(recent, maxlen=self.behaviour_window))

    def _judge(self, tally: _Tally) -> int | None:
        if len(tally.recent) >= self.decided_min_tries:
            shares = np.bincount(tally.recent, minlength=len(self.actions)) / len(tally.recent)
            if shares.max() >= self.decided_share:
                return int(shares.argmax())
        tried = np.flatnonzero(tally.count >= self.min_visits)
        if len(tried) < 2:
            return None
        ranked = tried[np.argsort(-tally.mean[tried])]
        if tally.mean[ranked[0]] - tally.mean[ranked[1]] < self.margin:
            return None
        return int(ranked[0])

    def verdict(self, key: str) -> int | None:
        """Index of the action the student found best in this situation, or None."""
        tally = self._tallies.get(key)
        return None if tally is None else tally.verdict

    def sentence(self, key: str) -> str | None:
        """The feedback sentence for the teacher's prompt, or None when the student has no verdict."""
        verdict = self.verdict(key)
        if verdict is None:
            return None
        return f"Feedback from the student: in this situation, {self.actions[verdict]} worked best."

    def verdicts(self) -> dict[str, int]:
        """Every situation that has a verdict, with it."""
        return {key: t.verdict for key, t in self._tallies.items() if t.verdict is not None}

    @property
    def situations_with_verdict(self) -> int:
        return len(self.verdicts())

    def state_dict(self) -> dict[str, Any]:
        return {
            key: {"count": t.count.tolist(), "mean": t.mean.tolist(), "recent": list(t.recent), "verdict": t.verdict}
            for key, t in self._tallies.items()
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._tallies = {}
        for key, v in state.items():
            # Checkpoints from before the behaviour window have no "recent": it fills again.
            tally = self._tallies[key] = self._new_tally(v.get("recent", ()))
            tally.count[:] = v["count"]
            tally.mean[:] = v["mean"]
            tally.verdict = v["verdict"]
