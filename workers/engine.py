"""One training run, top to bottom: ``train(config, sink, out_dir=...)``.

    set up      level, guidance (an LLM teacher that cannot be loaded fails here, before any
                training), probe states; the teacher answers the probes' situations
    loop        for each rollout:
                  stop?                    -> checkpoint, finish as "stopped"
                  collect                  (GuidanceCallback: each sample's advice and weight,
                                            live frames and hints of environment 0)
                  guidance.learn           the student's experience flows back (bidirectional)
                  PPO update + distillation toward the advice, annealed
                  report metrics, progress; evaluate and checkpoint on schedule
    finish      final evaluation, the teacher's accuracy zero-shot and with the feedback,
                summary.json

The modes and guidance kinds differ only in their guidance object (``workers.guidance``);
subgoal guidance also wraps each environment in ``workers.shaping.PlannedEnv`` (its planner
sets the subgoal the reward is shaped toward; an episode's plan outcomes go back to it). The
``teacher`` mode replaces the loop by the teacher acting alone.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.utils import safe_mean
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from workers.config import Mode, RunConfig
from workers.evaluation import Probe, collect_probes, evaluate_policy
from workers.events import EventEmitter, EventKind, EventSink, StopSignal, never_stop
from workers.guidance import Guidance, LLMGuidance, guidance_for
from workers.levels import make_env
from workers.shaping import PlannedEnv, ShapedRewards
from workers.situation import Situation
from workers.student import GuidedPPO, MinigridCNN
from workers.teachers import TeacherError

CHECKPOINT_DIR = "checkpoint"
PARTIAL = ".partial-"
"""Infix of the files an attempt writes before it puts them in place (``checkpoint.partial-*``)."""
MIN_EPISODES_FOR_THRESHOLD = 20
"""frames_to_threshold needs the training return over at least this many episodes."""


def _policy_setup(config: RunConfig) -> tuple[str, dict[str, Any]]:
    if config.policy == "cnn":
        return "CnnPolicy", {"features_extractor_class": MinigridCNN, "features_extractor_kwargs": {"features_dim": 128}}
    return "MlpPolicy", {"net_arch": [64, 64]}


class Throttle:
    """True at most once every ``interval_s`` seconds; never when the interval is 0."""

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self._last = float("-inf")

    def due(self) -> bool:
        """Whether ``ready`` would say True now (without counting it)."""
        return bool(self.interval_s) and time.monotonic() - self._last >= self.interval_s

    def ready(self) -> bool:
        if not self.due():
            return False
        self._last = time.monotonic()
        return True


BURST_S = 2.0
"""Live frames go out in bursts of this many seconds' worth of frames (see ``LiveView``)."""


class LiveView:
    """Environment 0 as the run page shows it: FRAME events of its grid, the agent's field of
    view and the episode's return so far.

    Frames go out on average one every ``frame_interval_s``, in bursts of consecutive steps: a
    budget fills at that rate up to ``BURST_S`` seconds' worth of frames, a burst starts once it
    is full and lasts until it is spent. A burst shows the agent moving step by step, and the
    page plays frames one every ``frame_interval_s`` (static/experiments/run.js), so the view
    keeps moving through the PPO update that follows each rollout, a second or two behind the
    environment. Frames spaced evenly instead showed one step in a dozen or more, and stood
    still through every update: 3.9 frames a second on a default PPO run (measured on a busy
    2-core machine, where updates took two thirds of the time).

    This is the one frame throttle: here, a frame that is not wanted is never encoded, and
    every sink (the web app's, the JSONL file) gets the same frames."""

    def __init__(self, run: "_Run"):
        self.run = run
        self.interval_s = run.config.frame_interval_s
        self._capacity = max(1.0, BURST_S / self.interval_s) if self.interval_s else 0.0
        self._budget = self._capacity
        self._filled_at = time.monotonic()
        self._sending = False
        self.episode_step = 0
        self.episode_return = 0.0
        self.last_episode_return: float | None = None

    def step(self, vec_env: VecEnv, action: int, reward: float, done: bool) -> None:
        """Environment 0 took ``action`` and got ``reward``; ``done``: its episode ended, and
        the environment shows the next one's start."""
        if done:
            self.last_episode_return = self.episode_return + reward
            self.episode_step, self.episode_return = 0, 0.0
        else:
            self.episode_step += 1
            self.episode_return += reward
        if self._frame_due():
            self.emit(vec_env, action, reward)

    def _frame_due(self) -> bool:
        if not self.interval_s:
            return False
        now = time.monotonic()
        self._budget = min(self._capacity, self._budget + (now - self._filled_at) / self.interval_s)
        self._filled_at = now
        self._sending = self._budget >= (1.0 if self._sending else self._capacity)
        if self._sending:
            self._budget -= 1.0
        return self._sending

    def emit(self, vec_env: VecEnv, action: int, reward: float) -> None:
        env = vec_env.unwrapped.envs[0].unwrapped  # type: ignore[attr-defined]
        grid = env.grid.encode().transpose(1, 0, 2)  # (y, x, 3): row-major for the browser
        self.run.emit(
            EventKind.FRAME,
            width=env.width,
            height=env.height,
            grid=grid.reshape(-1).tolist(),
            agent=[int(env.agent_pos[0]), int(env.agent_pos[1]), int(env.agent_dir)],
            view=[int(v) for v in env.get_view_exts()],
            mission=env.mission,
            interval_s=self.interval_s,
            episode_step=self.episode_step,
            action=self.run.actions[action],
            reward=reward,
            episode_return=round(self.episode_return, 4),
            last_episode_return=None if self.last_episode_return is None else round(self.last_episode_return, 4),
        )


class GuidanceCallback(BaseCallback):
    """Runs inside SB3's rollout collection: records each sample's situation, advice and
    weight, and emits environment 0's live frames and hints at a bounded rate."""

    def __init__(self, run: "_Run"):
        super().__init__()
        self.run = run
        self.situations: list[Situation] = []
        self.experts: list[int | None] = []
        self.plan: dict[str, Any] | None = None
        self.keys = np.empty((run.config.n_steps, run.config.n_envs), dtype=object)
        self._live = LiveView(run)
        self._hints = Throttle(run.config.hint_interval_s)

    def _on_rollout_start(self) -> None:
        self._observe()

    def _observe(self) -> None:
        """Read the situations (and the bot's actions) of the observations the next step acts
        on. Without guidance, nothing is read: PPO alone never pays for it."""
        guidance = self.run.guidance
        if not guidance.active:
            return
        self.situations = self.training_env.get_attr("situation")
        n = len(self.situations)
        self.experts = self.training_env.get_attr(guidance.advice_attr) if guidance.advice_attr else [None] * n
        # Environment 0's plan as it acts, read only when a hint may go out.
        self.plan = self.training_env.get_attr("plan_view", [0])[0] if guidance.planner and self._hints.due() else None

    def _on_step(self) -> bool:
        run, model = self.run, self.model
        pos = model.rollout_buffer.pos
        actions = self.locals["actions"]
        if run.guidance.active:
            for i, (situation, expert) in enumerate(zip(self.situations, self.experts)):
                self.keys[pos, i] = situation.key
                model.guide_probs[pos, i], model.guide_weight[pos, i] = run.guidance.advise(situation, expert)
            if (self.plan is not None or not run.guidance.planner) and self._hints.ready():
                run.emit_hint(self.situations[0], model.guide_probs[pos, 0], model.guide_weight[pos, 0], int(actions[0]),
                              self.plan)
        # The level's own reward (the shaping is the student's alone), as the environment gave it.
        reward = round(float(self.locals["rewards"][0]) - float(self.locals["infos"][0].get("shaping", 0.0)), 6)
        self._live.step(self.training_env, int(actions[0]), reward, bool(self.locals["dones"][0]))
        self._observe()
        return True


class _Run:
    """A run's state between rollouts, and how it reports: events, checkpoints, the summary."""

    def __init__(self, config: RunConfig, emitter: EventEmitter, out_dir: Path, actions: tuple[str, ...]):
        self.config = config
        self.emitter = emitter
        self.out_dir = out_dir
        self.actions = actions
        self.guidance: Guidance = Guidance()
        self.probes: list[Probe] = []
        self.frames_to: dict[float, int | None] = {0.9: None, config.return_threshold: None}
        self.accuracy: dict[str, float | None] = {"start": None, "end": None, "end_unjudged": None}
        self.wall_before = 0.0
        self.started = time.monotonic()
        self.next_eval = config.eval_interval or None
        self.last_eval: dict | None = None
        self.timesteps = 0

    def drop_faulty_teacher(self) -> None:
        """A teacher whose call failed or hung is closed; the run goes on student-only."""
        teacher = self.guidance.teacher
        fault = teacher.failure() if teacher else None
        if fault is not None:
            self.guidance.close()
            self.guidance = Guidance()
            self.emit(EventKind.TEACHER_FAULT, error=str(fault), fallback="student-only")

    def teacher_metrics(self) -> dict[str, Any]:
        """A METRICS event's teacher-accuracy fields, with the student's feedback and without
        waiting for the LLM (``Guidance.accuracy``): on the probe states answered so far, how
        many those are of how many, and on the answered ones the student has given no feedback
        for. Nones without an LLM teacher."""
        if self.guidance.teacher is None:
            return dict(teacher_accuracy=None, teacher_accuracy_answered=None, probe_states=None,
                        teacher_accuracy_unjudged=None)
        overall, unjudged = self.guidance.accuracy(self.probes, wait=False)
        return dict(teacher_accuracy=overall.share, teacher_accuracy_answered=overall.answered,
                    probe_states=overall.probes, teacher_accuracy_unjudged=unjudged.share)

    # --- reporting -----------------------------------------------------------------------

    def emit(self, kind: EventKind, **data: Any):
        return self.emitter.emit(kind, self.timesteps, **data)

    def emit_hint(self, situation: Situation, probs: np.ndarray, weight: float, action: int,
                  plan: dict[str, Any] | None = None) -> None:
        """A HINT event about environment 0's sample; ``plan`` (subgoal guidance): its
        ``PlannedEnv.plan_view``, whose feedback is then the hint's."""
        self.emit(
            EventKind.HINT,
            situation=situation.text,
            situation_key=situation.key,
            distribution={a: round(float(p), 4) for a, p in zip(situation.actions, probs)},
            teacher_action=situation.actions[int(np.argmax(probs))] if weight > 0 else None,
            action_taken=situation.actions[action],
            feedback=plan["feedback"] if plan else self.guidance.feedback(situation),
            weight=round(float(weight), 3),
            source=self.guidance.source if weight > 0 else "none",
            plan=plan,
        )

    def wall_s(self) -> float:
        return self.wall_before + time.monotonic() - self.started

    def report(self, episodes: deque, losses: dict[str, Any], fps: float) -> None:
        returns = [e["r"] for e in episodes]
        mean_return = float(safe_mean(returns)) if returns else None
        if mean_return is not None and len(returns) >= MIN_EPISODES_FOR_THRESHOLD:
            for threshold, reached in self.frames_to.items():
                if reached is None and mean_return >= threshold:
                    self.frames_to[threshold] = self.timesteps
        teacher = self.guidance.teacher
        stats = teacher.stats if teacher else None
        self.emit(
            EventKind.METRICS,
            mean_return=mean_return,
            success_rate=float(np.mean(np.array(returns) > 0)) if returns else None,
            mean_length=float(safe_mean([e["l"] for e in episodes])) if returns else None,
            episodes=len(returns),
            **self.teacher_metrics(),
            cache_hit_rate=stats.hit_rate if stats else None,
            llm_calls=stats.calls if stats else 0,
            llm_latency_ms=stats.mean_latency_ms if stats else None,
            **{"feedback_situations": 0, "teacher_reliability": None, **self.guidance.metrics()},
            **losses,
        )
        remaining = self.config.total_timesteps - self.timesteps
        self.emit(
            EventKind.PROGRESS,
            timesteps=self.timesteps,
            total_timesteps=self.config.total_timesteps,
            fps=round(fps, 1),
            elapsed_s=round(self.wall_s(), 2),
            eta_s=round(remaining / fps, 1) if fps > 0 else None,
        )

    # --- checkpoints ---------------------------------------------------------------------

    def checkpoint(self, model: GuidedPPO | None) -> None:
        """Write model and run state into a directory of this process's own, announce them,
        then put them in place in one rename."""
        final = self.out_dir / CHECKPOINT_DIR
        # Its own: a worker that was presumed dead and wakes up must not write into, or delete,
        # the directory the newer attempt of its run is writing.
        tmp = Path(tempfile.mkdtemp(prefix=CHECKPOINT_DIR + PARTIAL, dir=self.out_dir))
        try:
            if model is not None:
                model.save(tmp / "model.zip")
            state = {
                "timesteps": self.timesteps,
                "last_seq": self.emitter.last_seq + 1,  # the CHECKPOINT event's own number
                "wall_s": self.wall_s(),
                "frames_to": [[k, v] for k, v in self.frames_to.items()],
                "next_eval": self.next_eval,
                "guidance": self.guidance.state_dict(),
            }
            (tmp / "state.json").write_text(json.dumps(state))
            # Announced before it replaces the last one: a sink that refuses the event (the web
            # app's, once a newer attempt of the run took over from this worker) stops this run
            # before it overwrites the newer attempt's checkpoint.
            self.emit(EventKind.CHECKPOINT, path=str(final), timesteps=self.timesteps)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)

    def restore(self, state: dict) -> None:
        self.timesteps = state["timesteps"]
        self.wall_before = state["wall_s"]
        self.frames_to = {float(k): v for k, v in state["frames_to"]}
        self.next_eval = state["next_eval"]
        # Checkpoints from before the guidance objects kept the guidance's fields at the top.
        self.guidance.load_state_dict(state.get("guidance", state))

    # --- evaluation and summary ----------------------------------------------------------

    def evaluate(self, policy) -> dict:
        """Evaluate ``policy(observation, env) -> action probabilities``, greedy and sampled."""
        result = evaluate_policy(policy, self.config.env_id, self.config.eval_episodes, self.config.seed)
        self.last_eval = result
        self.emit(EventKind.EVALUATION, **result)
        return result

    def summary(self, status: str, fps: float, stats) -> dict:
        last = self.last_eval or {}
        return {
            "env": self.config.env_id,
            "mode": self.config.mode.value,
            "seed": self.config.seed,
            "status": status,
            "timesteps": self.timesteps,
            "frames_to_0_9": self.frames_to[0.9],
            "return_threshold": self.config.return_threshold,
            "frames_to_threshold": self.frames_to[self.config.return_threshold],
            "final_eval_return": last.get("mean_return"),
            "final_eval_success": last.get("success_rate"),
            "final_eval_sampled_return": last.get("sampled_mean_return"),
            "final_eval_sampled_success": last.get("sampled_success_rate"),
            "teacher_model": self.config.teacher_model if self.config.mode.uses_llm else None,
            "teacher_accuracy_start": self.accuracy["start"],
            "teacher_accuracy_end": self.accuracy["end"],
            "teacher_accuracy_end_unjudged": self.accuracy["end_unjudged"],
            "guidance_kind": self.config.guidance_kind.value if self.config.mode.guides_student else None,
            "llm_calls": stats.calls if stats else 0,
            "llm_mean_latency_ms": stats.mean_latency_ms if stats else None,
            "cache_hit_rate": stats.hit_rate if stats else None,
            "wall_s": round(self.wall_s(), 2),
            "fps": round(fps, 1),
            "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        }


def _write_announced(path: Path, text: str, announce: Callable[[], None]) -> None:
    """Write ``text`` to a file of this process's own beside ``path``, call ``announce``, then
    rename the file to ``path``; if ``announce`` raises (a sink refusing a superseded attempt's
    event), the file is removed and ``path`` left as it was."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + PARTIAL, dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        announce()
    except BaseException:
        os.unlink(tmp)
        raise
    os.replace(tmp, path)


def _last_seq_of_checkpoint(out_dir: Path) -> int:
    state = out_dir / CHECKPOINT_DIR / "state.json"
    return json.loads(state.read_text())["last_seq"] if state.exists() else 0


def train(
    config: RunConfig,
    sink: EventSink,
    *,
    out_dir: str | Path,
    should_stop: StopSignal = never_stop,
    resume: bool = False,
    last_seq: int | None = None,
) -> dict:
    """Run ``config`` to the end (or until ``should_stop()`` says so at a rollout boundary),
    reporting through ``sink``. Writes checkpoints and ``summary.json`` under ``out_dir``.

    ``resume`` continues from ``out_dir``'s checkpoint. Event numbers continue after
    ``last_seq`` (the last number the caller's store holds; default: the checkpoint's), so
    events emitted after the checkpoint but before a crash are never numbered twice.

    Returns the summary. Errors before training (unknown level, bad teacher model) and during
    it are reported as a ``run_failed`` event and raised.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for partial in out_dir.glob(f"*{PARTIAL}*"):  # of an attempt that died before its rename
        shutil.rmtree(partial) if partial.is_dir() else partial.unlink()
    state_path = out_dir / CHECKPOINT_DIR / "state.json"
    if resume and not state_path.exists():
        raise FileNotFoundError(f"no checkpoint to resume from in {out_dir}")
    if last_seq is None:
        last_seq = _last_seq_of_checkpoint(out_dir) if resume else 0
    emitter = EventEmitter(sink, last_seq=last_seq)
    run: _Run | None = None
    try:
        config.validate()
        run = _Run(config, emitter, out_dir, make_env(config.env_id).action_names)
        run.guidance = guidance_for(config, run.actions)
        if isinstance(run.guidance, LLMGuidance):
            run.probes = collect_probes(config.env_id, config.probe_states, config.seed)
        state = json.loads(state_path.read_text()) if resume else None
        if state:
            run.restore(state)
        run.emit(
            EventKind.RUN_STARTED,
            config=config.to_dict(),
            env_id=config.env_id,
            mode=config.mode.value,
            actions=list(run.actions),
            teacher=config.teacher,
            resumed=bool(state),
            start_timestep=run.timesteps,
            checkpoint_seq=state["last_seq"] if state else None,
        )
        if config.mode == Mode.TEACHER:
            status, fps = _teacher_alone(run, should_stop)
        else:
            status, fps = _train_student(run, should_stop, state_path if state else None)
        stats = run.guidance.teacher.stats if run.guidance.teacher else None
        if status != "stopped":
            # Measured after training, so that no run waits for a measurement before it learns
            # (most answers are in the cache by now); not after a stop, which someone awaits.
            try:
                run.accuracy.update(run.guidance.final_accuracy(run.probes))
            except TeacherError:
                run.drop_faulty_teacher()
        summary = run.summary(status, fps, stats)
        _write_announced(out_dir / "summary.json", json.dumps(summary, indent=2),
                         lambda: run.emit(EventKind.RUN_FINISHED, status=status, summary=summary))
        return summary
    except BaseException as exc:
        emitter.emit(
            EventKind.RUN_FAILED,
            run.timesteps if run else 0,
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )
        raise
    finally:
        if run:
            run.guidance.close()
        sink.close()


def _guidance_lr(config: RunConfig, timesteps: int) -> float:
    """The distillation step's learning rate after ``timesteps`` frames: ``guidance_coef`` times
    PPO's, falling linearly to zero over ``guidance_anneal_frac`` of the run."""
    horizon = config.guidance_anneal_frac * config.total_timesteps
    if horizon <= 0:
        return 0.0
    return config.guidance_coef * config.learning_rate * max(0.0, 1.0 - timesteps / horizon)


def _train_student(run: _Run, should_stop: StopSignal, checkpoint_state: Path | None) -> tuple[str, float]:
    config = run.config
    th.set_num_threads(1)  # the networks are tiny; a second thread only fights the LLM's
    planner = run.guidance.planner

    def level() -> gym.Env:
        env = make_env(config.env_id, expert=run.guidance.needs_expert)
        return PlannedEnv(env, planner, gamma=config.gamma, scale=config.subgoal_shaping) if planner else env

    vec_env: VecEnv = make_vec_env(level, n_envs=config.n_envs, seed=config.seed, vec_env_cls=DummyVecEnv)
    if planner:
        vec_env = ShapedRewards(vec_env)  # outside the Monitor: episodes are recorded on the level's reward
    policy, policy_kwargs = _policy_setup(config)
    if checkpoint_state:
        model = GuidedPPO.load(checkpoint_state.parent / "model.zip", env=vec_env, device="cpu")
    else:
        model = GuidedPPO(
            policy,
            vec_env,
            n_steps=config.n_steps,
            batch_size=config.batch_size,
            n_epochs=config.n_epochs,
            learning_rate=config.learning_rate,
            gamma=config.gamma,
            gae_lambda=config.gae_lambda,
            clip_range=config.clip_range,
            ent_coef=config.ent_coef,
            vf_coef=config.vf_coef,
            max_grad_norm=config.max_grad_norm,
            policy_kwargs=policy_kwargs,
            seed=config.seed,
            device="cpu",
            verbose=0,
        )
    model.guidance_epochs = config.guidance_epochs
    model.guidance_tolerance = config.guidance_tolerance
    callback = GuidanceCallback(run)
    if not checkpoint_state:
        try:
            run.guidance.prepare(run.probes, should_stop)
        except TeacherError:
            run.drop_faulty_teacher()

    def policy(obs: np.ndarray, _env) -> np.ndarray:
        with th.no_grad():
            return model.policy.get_distribution(model.policy.obs_to_tensor(obs)[0]).distribution.probs[0].numpy()

    remaining = config.total_timesteps - run.timesteps
    total, callback = model._setup_learn(remaining, callback, reset_num_timesteps=not checkpoint_state)
    callback.on_training_start(locals(), globals())
    loop_start, loop_frames = time.monotonic(), 0
    status = "succeeded"
    rollouts = 0
    while model.num_timesteps < total:
        if should_stop():
            status = "stopped"
            break
        guidance_lr = _guidance_lr(config, model.num_timesteps)  # as the rollout starts
        model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)
        run.drop_faulty_teacher()
        buffer = model.rollout_buffer
        run.guidance.learn(callback.keys.ravel(), buffer.actions.ravel().astype(int), buffer.advantages.ravel())
        model.guidance_lr = guidance_lr if run.guidance.active else 0.0
        model._update_current_progress_remaining(model.num_timesteps, total)
        model.train()
        rollouts += 1
        run.timesteps = model.num_timesteps
        loop_frames += config.rollout_frames
        fps = loop_frames / (time.monotonic() - loop_start)
        losses = {k.split("/")[1]: float(v) for k, v in model.logger.name_to_value.items() if k.startswith("train/")}
        run.report(
            model.ep_info_buffer,
            {
                "policy_loss": losses.get("policy_gradient_loss"),
                "value_loss": losses.get("value_loss"),
                "entropy": -losses["entropy_loss"] if "entropy_loss" in losses else None,
                "approx_kl": losses.get("approx_kl"),
                "clip_fraction": losses.get("clip_fraction"),
                "guidance_loss": model.last_guidance_loss,
                "guidance_coef": model.guidance_lr / config.learning_rate,
            },
            fps,
        )
        model.logger.dump(model.num_timesteps)
        if run.next_eval and run.timesteps >= run.next_eval and run.timesteps < total:
            run.evaluate(policy)
            run.next_eval += config.eval_interval
        if config.checkpoint_interval and rollouts % config.checkpoint_interval == 0:
            run.checkpoint(model)
    fps = loop_frames / max(time.monotonic() - loop_start, 1e-9)
    if status == "succeeded":
        run.evaluate(policy)
    run.checkpoint(model)
    vec_env.close()
    return status, fps


def _teacher_alone(run: _Run, should_stop: StopSignal) -> tuple[str, float]:
    """The teacher acts (its most likely action), nothing learns: how good is it alone?"""
    config = run.config
    teacher = run.guidance.teacher
    assert teacher is not None
    vec_env = make_vec_env(lambda: make_env(config.env_id), n_envs=config.n_envs, seed=config.seed, vec_env_cls=DummyVecEnv)
    vec_env.reset()
    episodes: deque = deque(maxlen=100)
    start, frames, status = time.monotonic(), 0, "succeeded"
    live, hint_throttle = LiveView(run), Throttle(config.hint_interval_s)
    while run.timesteps < config.total_timesteps:
        if should_stop():
            status = "stopped"
            break
        for _ in range(config.n_steps):
            situations = vec_env.get_attr("situation")
            answers = [teacher.ask(s, None) for s in situations]
            actions = np.array([int(np.argmax(a)) for a in answers])
            if hint_throttle.ready():
                run.emit_hint(situations[0], answers[0], 1.0, int(actions[0]))
            _, rewards, dones, infos = vec_env.step(actions)
            episodes.extend(info["episode"] for info in infos if "episode" in info)
            run.timesteps += config.n_envs
            live.step(vec_env, int(actions[0]), float(rewards[0]), bool(dones[0]))
        frames += config.rollout_frames
        run.report(episodes, {}, frames / (time.monotonic() - start))
    fps = frames / max(time.monotonic() - start, 1e-9)
    if status == "succeeded":
        run.evaluate(lambda _obs, env: teacher.ask(env.situation, None))
    vec_env.close()
    return status, fps
