"""The student's feedback to the teacher: the other half of the bi-directional loop.

What the student knows that the teacher does not is how its actions *turned out*. After every
rollout the engine hands this module, for each sample, the situation it was taken in, the action
the student took and the action's GAE advantage (how much better than the student's own value
estimate the action turned out to be).

Advantages from different rollouts cannot be compared with each other: they are measured
against a value function that keeps changing. Early in a run the value function is near zero
and every advantage is large and positive; an action the student stopped taking once it was
guided keeps those early advantages, while the action it now takes collects the later, smaller
ones, so a plain running mean per action ranks the abandoned action first (measured: 36 of 56
verdicts wrong at 12,288 frames, most of them against the teacher's right answer). So actions are
compared only *within* a rollout, and the comparisons are pooled over rollouts: for actions ``a``
and ``b`` both tried in a situation in a rollout, with ``n_a`` and ``n_b`` tries and mean
advantages ``m_a`` and ``m_b``, the memory adds ``w * (m_b - m_a)`` and ``w = n_a n_b / (n_a + n_b)``
(the inverse of the difference's variance, up to the advantages' own variance). The pooled
difference is the estimate of how much better ``b`` is than ``a``; its standard error comes
from the spread of advantages around their per-rollout means.

A *verdict* for a situation is the action that beats every other action tried there at least
``min_visits`` times by ``confidence`` standard errors or more. A verdict is sticky: it changes
only when another action beats every other one so.

The verdict reaches the teacher as one sentence in its prompt for that situation (see
``FeedbackMemory.sentence``). Since the teacher caches answers by (situation, sentence), a new
or changed verdict makes the teacher answer that situation again, and only that one.
docs/feedback.md describes the loop and what it measurably does to the teacher's accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from workers.config import RunConfig


@dataclass
class _Tally:
    """What the student found out in one situation, pooled over rollouts."""

    count: np.ndarray
    """Tries of each action."""
    difference: np.ndarray
    """``[a, b]``: the weighted sum of ``mean advantage of b - mean advantage of a`` over the
    rollouts that tried both."""
    weight: np.ndarray
    """``[a, b]``: the sum of those weights."""
    squares: float = 0.0
    """Sum of squared deviations of advantages from their (rollout, action) means."""
    dof: int = 0
    """Their degrees of freedom."""
    verdict: int | None = None

    def fold(self, actions: np.ndarray, advantages: np.ndarray) -> None:
        """One rollout's tries in this situation."""
        n = len(self.count)
        tries = np.bincount(actions, minlength=n)
        sums = np.bincount(actions, weights=advantages, minlength=n)
        tried = np.flatnonzero(tries)
        means = np.zeros(n)
        means[tried] = sums[tried] / tries[tried]
        self.count += tries
        self.squares += float(((advantages - means[actions]) ** 2).sum())
        self.dof += int(len(actions) - len(tried))
        for i, a in enumerate(tried):
            for b in tried[i + 1 :]:
                w = tries[a] * tries[b] / (tries[a] + tries[b])
                self.difference[a, b] += w * (means[b] - means[a])
                self.difference[b, a] -= w * (means[b] - means[a])
                self.weight[a, b] += w
                self.weight[b, a] += w

    def judge(self, min_visits: int, confidence: float) -> int | None:
        """The action that beats every other well-tried action by ``confidence`` standard
        errors, or None."""
        candidates = np.flatnonzero(self.count >= min_visits)
        if len(candidates) < 2 or self.dof < 2:
            return None
        sigma = np.sqrt(self.squares / self.dof)
        for b in candidates:
            others = candidates[candidates != b]
            w = self.weight[others, b]
            if (w <= 0).any():
                continue
            if (self.difference[others, b] / w >= confidence * sigma / np.sqrt(w)).all():
                return int(b)
        return None


@dataclass
class FeedbackMemory:
    """Per-situation action comparisons from the student's rollouts, and the verdicts they give."""

    actions: tuple[str, ...]
    min_visits: int = RunConfig.feedback_min_visits
    """An action counts once the student has tried it this many times in the situation."""
    confidence: float = RunConfig.feedback_confidence
    """The verdict must beat every other counted action by this many standard errors."""
    _tallies: dict[str, _Tally] = field(default_factory=dict)

    def update(self, keys: Iterable[str], actions: np.ndarray, advantages: np.ndarray) -> set[str]:
        """Fold one rollout in (its samples in any order). Returns the situations whose verdict
        changed."""
        keys = np.asarray(list(keys), dtype=object)
        actions = np.asarray(actions).ravel().astype(int)
        advantages = np.asarray(advantages, dtype=np.float64).ravel()
        changed: set[str] = set()
        order = np.argsort(keys, kind="stable")
        uniques, starts = np.unique(keys[order], return_index=True)
        for key, rows in zip(uniques, np.split(order, starts[1:])):
            tally = self._tallies.get(key)
            if tally is None:
                tally = self._tallies[key] = self._new_tally()
            tally.fold(actions[rows], advantages[rows])
            verdict = tally.judge(self.min_visits, self.confidence)
            if verdict is not None and verdict != tally.verdict:
                tally.verdict = verdict
                changed.add(key)
        return changed

    def _new_tally(self) -> _Tally:
        n = len(self.actions)
        return _Tally(np.zeros(n, np.int64), np.zeros((n, n)), np.zeros((n, n)))

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
            key: {
                "count": t.count.tolist(), "difference": t.difference.tolist(), "weight": t.weight.tolist(),
                "squares": t.squares, "dof": t.dof, "verdict": t.verdict,
            }
            for key, t in self._tallies.items()
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._tallies = {}
        for key, v in state.items():
            tally = self._tallies[key] = self._new_tally()
            tally.verdict = v["verdict"]
            if "difference" not in v:
                continue  # a checkpoint from before the pooled comparisons: its verdicts, fresh statistics
            tally.count[:] = v["count"]
            tally.difference[:] = v["difference"]
            tally.weight[:] = v["weight"]
            tally.squares, tally.dof = v["squares"], v["dof"]
