"""What the engine reports while a run is live: the one frame throttle, environment 0's frames
(its grid, the agent's field of view, the episode's return so far) and the teacher's accuracy
from the first rollout on."""

from types import SimpleNamespace

import numpy as np
import pytest

from workers import engine
from workers.config import Mode
from workers.engine import BURST_S, LiveView
from workers.events import EventKind
from tests.engine.test_engine import run


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(engine.time, "monotonic", clock)
    return clock


def live_view(interval_s: float) -> tuple[LiveView, list[int]]:
    """A LiveView that records the number of each step it sends a frame of."""
    live = LiveView(SimpleNamespace(config=SimpleNamespace(frame_interval_s=interval_s)))
    sent: list[int] = []
    live.emit = lambda vec_env, action, reward: sent.append(live.steps)
    live.steps = 0
    return live, sent


def take_steps(live: LiveView, clock: Clock, n: int, every_s: float) -> None:
    for _ in range(n):
        live.step(None, 2, 0.0, done=False)
        live.steps += 1
        clock.now += every_s


def test_frames_go_out_in_bursts_of_consecutive_steps_one_every_interval_on_average(clock):
    live, sent = live_view(0.08)
    take_steps(live, clock, 3000, 0.003)  # for 9 s
    assert abs(len(sent) - 9 / 0.08) <= BURST_S / 0.08 + 1, "12.5 a second, give or take the budget not spent"
    starts = [b for a, b in zip(sent, sent[1:]) if b != a + 1]
    bursts = np.diff([sent[0], *starts, sent[-1] + 1])
    assert len(bursts) >= 4 and all(n >= BURST_S / 0.08 for n in bursts[:-1]), "bursts of two seconds' worth"


def test_after_a_pause_a_burst_starts_only_with_a_full_budget(clock):
    live, sent = live_view(0.08)
    take_steps(live, clock, 100, 0.003)
    spent = len(sent)
    assert sent == list(range(spent)) and spent < 100, "the first burst, spent"
    clock.now += 1.0  # a PPO update of 1 s: half a budget
    take_steps(live, clock, 1, 0.0)
    assert len(sent) == spent
    clock.now += 1.1
    take_steps(live, clock, 1, 0.0)
    assert sent[-1] == 101


def test_steps_slower_than_the_frame_rate_are_all_shown(clock):
    live, sent = live_view(0.08)
    take_steps(live, clock, 50, 0.2)  # the teacher acting alone
    assert sent == list(range(50))


def test_the_live_view_adds_up_the_episodes_return():
    live = LiveView(SimpleNamespace(config=SimpleNamespace(frame_interval_s=0)))  # no frames: counting only
    for reward in (0.0, 0.25, 0.0):
        live.step(None, 2, reward, done=False)
    assert (live.episode_step, live.episode_return, live.last_episode_return) == (3, 0.25, None)
    live.step(None, 2, 0.5, done=True)
    assert (live.episode_step, live.episode_return, live.last_episode_return) == (0, 0.0, 0.75)


def test_frames_show_the_agents_field_of_view_and_the_episodes_return(tmp_path):
    _, sink = run(tmp_path, mode=Mode.PPO, total_timesteps=2048, eval_interval=0, policy="mlp", frame_interval_s=1e-9)
    frames = [f.data for f in sink.of_kind(EventKind.FRAME)]
    assert len(frames) == 2048 // 4, "a frame for every step of environment 0"
    for f in frames:
        (x, y, direction), (x0, y0, x1, y1) = f["agent"], f["view"]
        assert x1 - x0 == y1 - y0 == 7
        # The agent stands in the middle of its view's near edge, looking into it.
        assert (x0, y0) == {0: (x, y - 3), 1: (x - 3, y), 2: (x - 6, y - 3), 3: (x - 3, y - 6)}[direction]
    ends = [f for f in frames if f["episode_step"] == 0]
    assert ends and any(f["last_episode_return"] > 0 for f in ends), "some episodes reached the ball"
    # BabyAI rewards only the step that ends an episode: it is the last episode's whole return.
    assert all(f["last_episode_return"] == pytest.approx(f["reward"], abs=1e-4) for f in ends)
    assert all(f["episode_return"] == 0.0 for f in frames)
    steps = [f["episode_step"] for f in frames]
    assert all(b in (a + 1, 0) for a, b in zip(steps, steps[1:]))


def test_teacher_accuracy_is_reported_from_the_first_rollout_with_how_many_probes_it_covers(tmp_path):
    # The teacher acting alone: nothing warms its answers up before the first rollout, so
    # the first rollouts are measured on the probe states it has answered by then.
    summary, sink = run(tmp_path, mode=Mode.TEACHER, n_envs=2, n_steps=64, total_timesteps=512, eval_interval=0)
    metrics = [m.data for m in sink.of_kind(EventKind.METRICS)]
    assert all(m["probe_states"] == 40 for m in metrics)
    answered = [m["teacher_accuracy_answered"] for m in metrics]
    assert 0 < answered[0] and answered == sorted(answered) and answered[-1] <= 40
    assert all(0 <= m["teacher_accuracy"] <= 1 for m in metrics), "a curve from the first rollout, not a dot"
    assert 0 <= summary["teacher_accuracy_end"] <= 1, "the summary's figure: on every probe state"
