"""The LLM teacher asked for plans: which subgoal next, given the mission and what was seen.

A :class:`PlanTeacher` is an :class:`~workers.teachers.LLMTeacher` (same model files, cache,
background thread, timeouts and statistics) whose question is a :class:`PlanQuestion` and whose
answer is a distribution over that question's candidate subgoals. The answer is read by
constrained scoring, never by parsing text: the prompt ends in ``Next subgoal:``, each
candidate's words are scored (the sum of their tokens' log-probabilities after the prompt),
and the sums are renormalised. So the teacher always names one of the candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from workers.subgoals import PlanState, Subgoal, candidates
from workers.teachers import LLMTeacher

PLAN_HELP = (
    "- go to an object: stand next to it, facing it\n"
    "- pick up an object: go to it and take it (you can carry one object at a time)\n"
    "- open a door: go to it and open it\n"
    "- put it next to an object: carry an object there and drop it next to that object\n"
    "A locked door opens only while you carry the key of its colour: to open it, first pick up that key, "
    "then open the door. Choose the subgoal that does the mission, or the one that must come before it.\n"
)


@dataclass(frozen=True)
class PlanQuestion:
    """A plan state with the subgoals the teacher may choose from. ``key`` names it in the
    teacher's caches: the state and the choices, so that an answer is only ever read against
    the choices it scored (the feedback can take a failed choice out of a state's question)."""

    state: PlanState
    choices: tuple[Subgoal, ...]

    @classmethod
    def of(cls, state: PlanState, failed: frozenset[Subgoal] = frozenset()) -> "PlanQuestion":
        """The question for ``state``: its candidates, less the subgoals the student's feedback
        says ``failed`` there (the feedback sentence names them, and is part of the cache key)."""
        return cls(state, tuple(c for c in candidates(state) if c not in failed))

    @cached_property  # read several times a step, in every environment, by the teacher's caches
    def key(self) -> str:
        return f"{self.state.key} | choices: " + "; ".join(c.text for c in self.choices)

    @property
    def text(self) -> str:
        return self.state.text


class PlanTeacher(LLMTeacher):
    """Answers a :class:`PlanQuestion` with a distribution over its ``choices``."""

    def __init__(self, model: str, *, timeout_s: float = 20.0, n_threads: int = 1):
        super().__init__(model, (), timeout_s=timeout_s, n_threads=n_threads)

    def _instructions(self) -> str:
        return (
            "A robot explores a grid world and must carry out its mission, one subgoal at a time. "
            "Subgoals:\n"
            f"{PLAN_HELP}"
            "Read the state, then name the single best next subgoal.\n\n"
        )

    def prompt(self, question: PlanQuestion, feedback: str | None) -> str:  # type: ignore[override]
        text = self._prefix + f"State: {question.text}\n"
        text += "Possible subgoals: " + "; ".join(c.text for c in question.choices) + ".\n"
        if feedback:
            text += f"{feedback}\n"
        if self._chat is not None:
            return self._chat(text) + "Next subgoal:"
        return text + "Next subgoal:"

    def _score(self, tokens: list[int], question: PlanQuestion) -> np.ndarray:  # type: ignore[override]
        """Each choice's summed token log-probabilities after the prompt, renormalised. One
        decode per choice, with the logits of every position: token by token, a call took up
        to 20 s on a busy 2-core machine (each decode waits for its threads)."""
        if len(question.choices) < 2:  # nothing to choose: no need to ask
            return np.ones(len(question.choices))
        first = self._logits_after(tokens)
        first = first - np.logaddexp.reduce(first)
        totals = []
        for choice in question.choices:
            words = self._llm.tokenize((" " + choice.text).encode(), add_bos=False, special=False)
            total = float(first[words[0]])
            if len(words) > 1:
                rows = self._logits_of_each(tokens, words[:-1])
                rows = rows - np.logaddexp.reduce(rows, axis=1, keepdims=True)
                total += float(rows[np.arange(len(words) - 1), words[1:]].sum())
            totals.append(total)
        scores = np.array(totals)
        probs = np.exp(scores - scores.max())
        return probs / probs.sum()

    def _logits_of_each(self, prompt: list[int], tokens: list[int]) -> np.ndarray:
        """The next-token logits after each of ``tokens``, appended to ``prompt`` (which is in
        the KV cache: ``_logits_after(prompt)`` ran last), in one decode; the cache then holds
        ``prompt`` again."""
        import llama_cpp

        llm = self._llm
        llm.n_tokens = len(prompt)
        llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
        llm._batch.set_batch(batch=tokens, n_past=llm.n_tokens, logits_all=True)
        llm._ctx.decode(llm._batch)
        vocab = llm.n_vocab()
        rows = np.stack([
            np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, i), shape=(vocab,)).astype(np.float64)
            for i in range(len(tokens))
        ])
        llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)  # back to the prompt alone
        return rows
