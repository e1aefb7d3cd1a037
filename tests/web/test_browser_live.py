"""The live rollout view in headless Chromium, against the same `run_local.py` stack as
test_browser.py (its fixtures): frames painted per second on the page of a running run, the
agent's field of view shaded, the episode's return shown. Writes the frames-per-second figure
to test-artifacts/live-frames.txt (the README quotes it; the target is at least 10 a second on
a 2-core machine) and a screenshot to test-artifacts/run-live-view.png. It asserts only that
frames keep coming, in order: a rate is a measurement, and a loaded machine would make it a
flaky test."""

from __future__ import annotations

from tests.browser import ARTIFACTS, screenshot
from tests.web.test_browser import ROOT, launch, page, pytestmark, stack  # noqa: F401  (fixtures and marks reused)

WINDOW_MS = 8000
PAUSE_MS = 500
"""A gap between two painted frames longer than this is the environment standing still (a PPO
update, a checkpoint), not a slow page."""

COUNT_PAINTS = """(windowMs) => new Promise((resolve) => {
  const canvas = document.getElementById('rollout');
  const paints = [];
  const observer = new MutationObserver((records) => {
    for (const r of records) paints.push([performance.now(), Number(canvas.dataset.seq)]);
  });
  observer.observe(canvas, { attributes: true, attributeFilter: ['data-seq'] });
  setTimeout(() => { observer.disconnect(); resolve(paints); }, windowMs);
})"""


def test_the_rollout_view_paints_frames_in_order_and_says_what_it_shows(stack, page):
    base, _, _ = stack
    # Small rollouts and one PPO epoch: the environment steps nearly all the time, so this
    # measures the way from the engine to the page (Redis, daphne, the playback) at the default
    # frame_interval_s, 0.06 s.
    launch(page, base, "live view", 5_000_000)
    page.wait_for_function("document.getElementById('rollout').dataset.seq", timeout=90000)
    paints = page.evaluate(COUNT_PAINTS, WINDOW_MS)
    times = [t for t, _ in paints]
    seqs = [s for _, s in paints]
    assert seqs == sorted(set(seqs)), "each frame painted once, in order"
    gaps = [b - a for a, b in zip(times, times[1:])]
    moving_s = sum(g for g in gaps if g <= PAUSE_MS) / 1000
    overall = len(paints) / (WINDOW_MS / 1000)
    while_moving = (len(gaps) - sum(g > PAUSE_MS for g in gaps)) / moving_s
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "live-frames.txt").write_text(
        f"{len(paints)} frames painted in {WINDOW_MS / 1000:g} s: {overall:.1f} a second overall, "
        f"{while_moving:.1f} a second while the environment stepped ({moving_s:.1f} s of it)\n")
    assert overall >= 1, f"frames stopped coming: {overall:.1f} a second"

    assert page.text_content("#frame-info").startswith("step ")
    assert page.text_content("#episode-return").startswith("Return so far ")
    assert page.text_content("#view-info") == "Shaded: the agent's 7×7 field of view."
    note = page.evaluate("document.getElementById('chart-teacher').layout.annotations.map(a => a.text)")
    assert note == ["no LLM teacher in this mode"], "an empty chart says why"
    screenshot(page, "run-live-view.png")
    page.click("#stop-button")
    page.wait_for_function("document.getElementById('status').textContent === 'cancelled'", timeout=60000)
    assert page.errors == []
