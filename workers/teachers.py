"""Teachers: a GGUF language model read through llama.cpp, and minigrid's BabyAI bot.

The LLM teacher never generates text. Its prompt ends in ``Best action:`` and the answer is
the model's next-token distribution restricted to the first token of each of the level's
action words (`` left``, `` right``, `` forward``...), renormalised: one forward pass, no
parsing. Prompts share a long prefix (the instructions), which stays in llama.cpp's KV cache,
so a question costs only its situation-specific tail.

Answers are cached by (situation key, feedback sentence): the teacher is asked once per
situation, and again only when the student's feedback for that situation changes. Calls run
on one background (daemon) thread, so that the training loop never waits for the LLM
(``LLMTeacher.current``) unless it asks to (``LLMTeacher.ask``, used to measure accuracy);
a call slower than ``timeout_s`` is a :class:`TeacherError`.

Which models can be chosen, and where their files are, is :mod:`workers.models`. llama.cpp
offloads ``BIDIR_TEACHER_GPU_LAYERS`` layers to the GPU (:func:`gpu_layers`; default 0, the CPU).
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

# The catalogue's names, importable from here as before (the engine, the web app and the tests do).
from workers.models import DEFAULT_TEACHER, GEMMA, SMOLLM2, available_models, model_dirs  # noqa: F401
from workers.models import TeacherError, check_gguf, resolve_model
from workers.situation import Situation

if TYPE_CHECKING:
    from llama_cpp import Llama

ACTION_HELP = {
    "left": "turn left, staying in the same cell",
    "right": "turn right, staying in the same cell",
    "forward": "move one step forward",
    "pickup": "pick up the object in front",
    "drop": "drop the object you carry in front",
    "toggle": "open or close the door in front, using a key if it is locked",
    "done": "declare the mission finished",
}


HOW_TO_REACH = (
    "How to reach an object: if you cannot see it, turn to look around, or walk on where the way is open; "
    "if it is to your left or right, level with you, turn towards it; once it is ahead of you, move forward; "
    "never walk into a wall."
)
"""General advice on moving in a grid, part of every level's instructions. Measured with
benchmarks/teacher_accuracy.py (results in benchmarks/results/prompts.txt): Qwen2.5-Coder-0.5B
agrees with the BabyAI bot more often with it, and acting alone it reaches the red ball in
every episode (return 0.89, against 0.81 without it). Wordings that said only "turn to look
around" made the model spin on the spot."""


def gpu_layers() -> int:
    """How many layers llama.cpp offloads to the GPU (``BIDIR_TEACHER_GPU_LAYERS``): 0, the
    default, runs on the CPU; -1 offloads them all. Only a llama-cpp-python built with CUDA
    offloads (see the README); a CPU build runs on the CPU whatever this says."""
    raw = os.environ.get("BIDIR_TEACHER_GPU_LAYERS") or "0"
    try:
        return int(raw)
    except ValueError:
        raise TeacherError(f"BIDIR_TEACHER_GPU_LAYERS must be a number of layers (0: CPU, -1: all), not {raw!r}") from None


def idle_cores(limit: int = 4) -> int:
    """Cores no other process is using now (from the 1-minute load average), at least 1 and at
    most ``limit``: how many threads the teacher's warm-up may use. llama.cpp's threads wait
    for each other at every step of a forward pass, so on a busy machine a second thread made
    the warm-up 2.5 times slower, not faster (19 plan states: 62.7 s on two threads, 24.8 s on
    one, beside another run), and single calls passed the 20 s timeout."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(limit, (os.cpu_count() or 1) - round(load)))


_LOADING = threading.Lock()


def cpu_uses_amx() -> bool:
    """Whether this llama.cpp build runs matrix multiplications on the CPU's AMX units."""
    import llama_cpp

    return b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info()


def load_llama(path: Path, **kwargs: Any) -> "Llama":
    """``llama_cpp.Llama(model_path=path, **kwargs)``, except on a CPU with AMX: there the model
    is loaded without llama.cpp's extra weight buffer types, one of which is AMX's. Its matrix
    multiplication crashes the process at the first evaluation (a segmentation fault in
    ggml_backend_amx_mul_mat, ggml-org/llama.cpp#20824, with Qwen2.5-Coder-0.5B Q4_K_M on an
    Intel Sapphire Rapids machine, 2026-12-07); without it the same calls take 412 ms. The
    ``Llama`` class has no option for it, so its default model parameters are replaced for the
    length of the load."""
    from llama_cpp import Llama
    from llama_cpp import llama as llama_module

    if not cpu_uses_amx():
        return Llama(model_path=str(path), **kwargs)
    with _LOADING:
        defaults = llama_module.llama_cpp.llama_model_default_params

        def without_extra_buffers():
            params = defaults()
            params.use_extra_bufts = False
            return params

        llama_module.llama_cpp.llama_model_default_params = without_extra_buffers
        try:
            return Llama(model_path=str(path), **kwargs)
        finally:
            llama_module.llama_cpp.llama_model_default_params = defaults


@dataclass
class TeacherStats:
    calls: int = 0
    hits: int = 0
    misses: int = 0
    latency_s: float = 0.0

    @property
    def hit_rate(self) -> float | None:
        asked = self.hits + self.misses
        return self.hits / asked if asked else None

    @property
    def mean_latency_ms(self) -> float | None:
        return 1000 * self.latency_s / self.calls if self.calls else None


TRAINING = 0
"""Priority of the training loop's questions (and of anyone waiting on an answer)."""
MEASUREMENT = 1
"""Priority of questions asked only to measure the teacher: answered when the LLM is idle."""


class _DaemonWorker:
    """Runs submitted calls one at a time, most urgent first (lowest ``priority``, then in
    order of submission), on one daemon thread. Unlike ThreadPoolExecutor's threads, a daemon
    thread stuck in a hung LLM call cannot keep the process (a CLI run, a Celery worker) from
    exiting."""

    def __init__(self, name: str):
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def submit(self, priority: int, fn, *args) -> Future:
        future: Future = Future()
        self._queue.put((priority, next(self._order), future, fn, args))
        return future

    def _loop(self) -> None:
        while (item := self._queue.get())[2] is not None:
            _, _, future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)

    def shutdown(self) -> None:
        """Cancel what has not started, and let the thread end after the current call."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item[2] is not None:
                item[2].cancel()
        self._queue.put((-1, next(self._order), None, None, ()))


class LLMTeacher:
    """Answers a situation with a distribution over the level's actions, from a GGUF model."""

    def __init__(self, model: str, actions: tuple[str, ...], *, timeout_s: float = 20.0, n_threads: int = 1):
        self.path = resolve_model(model)
        check_gguf(self.path)
        self.name = model
        self.actions = actions
        self.timeout_s = timeout_s
        self._threads = n_threads
        n_gpu_layers = gpu_layers()
        try:
            self._llm = load_llama(self.path, n_ctx=1024, n_threads=n_threads, n_threads_batch=n_threads,
                                   n_gpu_layers=n_gpu_layers, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise TeacherError(f"llama.cpp could not load {self.path}: {exc}") from exc
        self._action_tokens = [self._first_token(" " + a) for a in actions]
        if len(set(self._action_tokens)) != len(actions):
            raise TeacherError(f"{self.path.name}: the action words {actions} do not start with distinct tokens")
        self._prefix = self._instructions()
        self._chat = self._chat_template()
        # llama.cpp's first evaluation after loading is slow (seconds under load): do it here,
        # on the shared instructions the prefix cache then reuses, not inside a timed call.
        head = self._chat(self._prefix) if self._chat is not None else self._prefix
        self._llm.eval(self._llm.tokenize(head.encode(), add_bos=True))
        self._cache: dict[tuple[str, str | None], np.ndarray] = {}
        self._latest: dict[str, np.ndarray] = {}
        self._pending: dict[tuple[str, str | None], tuple[Future, int]] = {}
        """Questions not answered yet, with their priority."""
        self._running_since: float | None = None
        self._error: BaseException | None = None
        # Re-entrant: a future that is already done runs its callback in the submitting thread.
        self._lock = threading.RLock()
        self._worker = _DaemonWorker("teacher")
        self.stats = TeacherStats()

    def _first_token(self, word: str) -> int:
        return self._llm.tokenize(word.encode(), add_bos=False, special=False)[0]

    def _instructions(self) -> str:
        lines = "\n".join(f"- {a}: {ACTION_HELP[a]}" for a in self.actions)
        return (
            "A robot explores a grid world and must carry out its mission. "
            "Each turn it takes exactly one of these actions:\n"
            f"{lines}\n"
            "Read the situation, then name the single best next action.\n\n"
            f"{HOW_TO_REACH}\n\n"
        )

    def _chat_template(self):
        """The model's own chat template, if its GGUF carries one that renders."""
        source = self._llm.metadata.get("tokenizer.chat_template")
        if not source:
            return None
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str):
            raise ValueError(message)

        try:
            template = ImmutableSandboxedEnvironment().from_string(source)
            template.render(messages=[{"role": "user", "content": "x"}], add_generation_prompt=True,
                            bos_token="", eos_token="", raise_exception=raise_exception)
        except Exception:  # a template this renderer cannot handle: use the plain prompt
            return None
        return lambda question: template.render(
            messages=[{"role": "user", "content": question}], add_generation_prompt=True,
            bos_token="", eos_token="", raise_exception=raise_exception,
        )

    def prompt(self, situation: Situation, feedback: str | None) -> str:
        """Instructions, situation and feedback; in the model's chat format when it has one
        (an instruct model follows the feedback far better so: SmolLM2-135M-Instruct went
        from 0.68 to 0.91 agreement with the bot given the right feedback). The answer always
        starts "Best action:", so the next token names the action."""
        question = self._prefix + f"Situation: {situation.text}\n"
        if feedback:
            question += f"{feedback}\n"
        if self._chat is not None:
            return self._chat(question) + "Best action:"
        return question + "Best action:"

    def _compute(self, situation: Situation, feedback: str | None) -> np.ndarray:
        """The answer to (situation, feedback), timed and counted."""
        start = time.perf_counter()
        self._running_since = time.monotonic()
        tokens = self._llm.tokenize(self.prompt(situation, feedback).encode(), add_bos=True)
        probs = self._score(tokens, situation)
        with self._lock:
            self._running_since = None
            self.stats.calls += 1
            self.stats.latency_s += time.perf_counter() - start
        return probs

    def _logits_after(self, tokens: list[int]) -> np.ndarray:
        """The next-token logits after ``tokens``, evaluating only what the KV cache lacks."""
        import llama_cpp

        cached = self._llm.longest_token_prefix(self._llm.input_ids[: self._llm.n_tokens].tolist(), tokens)
        cached = min(cached, len(tokens) - 1)  # the last token must be evaluated to get its logits
        self._llm.n_tokens = cached
        self._llm.eval(tokens[cached:])
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(self._llm._ctx.ctx, -1), shape=(self._llm.n_vocab(),)
        ).astype(np.float64)
        if not np.isfinite(logits).all() or np.ptp(logits) == 0:
            raise TeacherError(f"{self.path.name} returned constant or non-finite logits")
        return logits

    def _score(self, tokens: list[int], situation: Situation) -> np.ndarray:
        """The answer to the prompt ``tokens``: the next-token distribution restricted to the
        first token of each action word, renormalised."""
        chosen = self._logits_after(tokens)[self._action_tokens]
        probs = np.exp(chosen - chosen.max())
        return probs / probs.sum()

    def _store(self, cache_key: tuple[str, str | None], future: Future) -> None:
        with self._lock:
            self._pending.pop(cache_key, None)
            if future.cancelled():
                return
            if future.exception() is not None:
                self._error = future.exception()
                return
            self._cache[cache_key] = future.result()
            self._latest[cache_key[0]] = self._cache[cache_key]

    def _submit(self, situation: Situation, feedback: str | None, priority: int) -> Future:
        cache_key = (situation.key, feedback)
        pending = self._pending.get(cache_key)
        if pending is not None:
            future, queued_at = pending
            # Asked again more urgently: move it ahead, unless it has started already.
            if queued_at <= priority or not future.cancel():
                return future
        # A question about this situation under older feedback is moot if it has not started.
        for stale in [k for k in self._pending if k[0] == situation.key]:
            if self._pending[stale][0].cancel():  # its callback also forgets it
                self._pending.pop(stale, None)
        future = self._worker.submit(priority, self._compute, situation, feedback)
        self._pending[cache_key] = (future, priority)
        future.add_done_callback(lambda f: self._store(cache_key, f))
        return future

    def _known_or_queued(self, situation: Situation, feedback: str | None, priority: int) -> np.ndarray | None:
        with self._lock:
            answer = self._cache.get((situation.key, feedback))
            if answer is not None:
                return answer
            self._submit(situation, feedback, priority)
            return self._latest.get(situation.key)

    def current(self, situation: Situation, feedback: str | None) -> np.ndarray | None:
        """The answer for (situation, feedback) if known; else ask for it in the background and
        return the latest answer for the situation under earlier feedback, or None. Counted in
        the cache statistics: this is the training loop's question, and the LLM answers these
        before the measurements' (``latest``)."""
        with self._lock:
            if (situation.key, feedback) in self._cache:
                self.stats.hits += 1
            else:
                self.stats.misses += 1
            return self._known_or_queued(situation, feedback, TRAINING)

    def latest(self, situation: Situation, feedback: str | None) -> np.ndarray | None:
        """As ``current``, without counting, and asked only when the LLM has no training
        question waiting: for measurements."""
        return self._known_or_queued(situation, feedback, MEASUREMENT)

    def cached(self, key: str, feedback: str | None) -> np.ndarray | None:
        """The stored answer for (situation key, feedback), without asking."""
        with self._lock:
            return self._cache.get((key, feedback))

    def ask(self, situation: Situation, feedback: str | None) -> np.ndarray:
        """The answer for (situation, feedback), waiting for the LLM if need be."""
        cache_key = (situation.key, feedback)
        with self._lock:
            answer = self._cache.get(cache_key)
            if answer is not None:
                return answer
            future = self._submit(situation, feedback, TRAINING)
        # Wait as long as the queue ahead of this question takes, but not on a hung call.
        while True:
            try:
                return future.result(timeout=0.25)
            except CancelledError:  # superseded, or moved ahead in the queue: wait on the new one
                with self._lock:
                    answer = self._cache.get(cache_key)
                    if answer is not None:
                        return answer
                    future = self._submit(situation, feedback, TRAINING)
            except FutureTimeout:
                fault = self.failure()
                if fault is not None:
                    raise (fault if isinstance(fault, TeacherError) else TeacherError(str(fault))) from fault

    def prepare(self, situations: list[Situation], threads: int, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Answer ``situations`` zero-shot now, waiting, on ``threads`` threads (the training
        loop is not running yet, so the LLM may use the cores it will share later); stop
        between two answers once ``should_stop()`` says so (a Ctrl-C or Stop during the warm-up)."""
        import llama_cpp

        llama_cpp.llama_set_n_threads(self._llm._ctx.ctx, threads, threads)
        try:
            for situation in {s.key: s for s in situations}.values():
                if should_stop():
                    break
                self.ask(situation, None)
        finally:
            llama_cpp.llama_set_n_threads(self._llm._ctx.ctx, self._threads, self._threads)

    def drop_queued(self) -> None:
        """Forget the questions that have not started (say, the training loop's, once training
        is over), so that whoever asks next is not kept waiting behind them."""
        with self._lock:
            for future, _ in list(self._pending.values()):
                future.cancel()  # its callback also forgets it

    def failure(self) -> BaseException | None:
        """Why the teacher cannot be trusted any more: a call failed, or the call in progress
        has run for longer than ``timeout_s`` (time spent queued does not count). None while
        the teacher is healthy."""
        with self._lock:
            if self._error is not None:
                return self._error
            running_since = self._running_since
        if running_since is not None and time.monotonic() - running_since > self.timeout_s:
            return TeacherError(f"the LLM did not answer within {self.timeout_s:g} s")
        return None

    def state_dict(self) -> dict:
        with self._lock:
            return {"answers": [[k, f, p.tolist()] for (k, f), p in self._cache.items()]}

    def load_state_dict(self, state: dict) -> None:
        with self._lock:
            for key, feedback, probs in state.get("answers", []):
                self._cache[(key, feedback)] = np.array(probs)
                self._latest[key] = self._cache[(key, feedback)]

    def close(self) -> None:
        self._worker.shutdown()
