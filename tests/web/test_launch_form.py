"""The launch form for people: presets (valid runs, the study's own configuration, defaults that
follow the level), the hyperparameters grouped under "Advanced" with readable labels, the
run-time estimate from stored runs, and the empty experiments list's one-click demo."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from experiments_app import services
from experiments_app.forms import BUDGET, HP_PREFIX, HYPERPARAMETER_GROUPS, KIND, LABELS, LaunchForm
from experiments_app.hyperparameters import experiment_problems, hyperparameter_defaults, hyperparameter_fields, run_config
from experiments_app.models import Experiment, Run
from experiments_app.presets import PAPER, PRESETS, QUICK, STUDY, STUDY_LEVELS, hyperparameters_for, preset_table
from experiments_app.selectors import RECENT_RUNS, run_speeds
from experiments_app.templatetags.launch import about
from study.spec import FULL
from tests.browser import chromium, logged_in_page, needs_chromium, screenshot
from tests.web.helpers import event, make_user, small_hyperparameters
from workers.config import DEFAULT_ENV, Mode, RunConfig
from workers.events import EventKind
from workers.levels import bot_can_play

OUTSIDE_THE_STUDY = "MiniGrid-Empty-5x5-v0"


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


class Inputs(HTMLParser):
    """The named inputs and selects of the form with id ``form_id``, as a browser would post
    them without a button's value (a select: its selected option, else its first)."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id, self.inside, self.values = form_id, False, {}
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        elif not self.inside:
            return
        elif tag == "input" and a.get("name"):
            self.values[a["name"]] = a.get("value") or ""
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and ("selected" in a or self._select not in self.values):
            self.values[self._select] = a.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "form":
            self.inside = False


def posted_inputs(page: str, scope: str) -> dict[str, str]:
    parser = Inputs(scope)
    parser.feed(page)
    return parser.values


# --- grouping -------------------------------------------------------------------------------


def test_every_hyperparameter_has_a_label_and_one_place():
    grouped = [name for _, group in HYPERPARAMETER_GROUPS for name in group]
    assert sorted(grouped + [BUDGET, KIND]) == sorted(name for name, *_ in hyperparameter_fields()), "each once, none left out"
    assert all(LABELS[name] != name for name in grouped + [BUDGET, KIND]), "readable labels, not field names"
    assert [title.split(":")[0] for title, _ in HYPERPARAMETER_GROUPS] == [
        "PPO", "Guidance", "Feedback", "Evaluation and checkpoints", "Live view"]


def test_the_page_folds_the_groups_under_advanced_and_keeps_the_budget_out(alice_client):
    page = alice_client.get(reverse("experiments:launch")).content.decode()
    advanced = page[page.index('<details class="advanced">'):page.index("</details>")]
    outside = page.replace(advanced, "")
    for title, group in HYPERPARAMETER_GROUPS:
        assert f"<legend>{title.replace(chr(39), '&#x27;')}</legend>" in advanced
        for name in group:
            assert f'id="id_{HP_PREFIX}{name}"' in advanced and f'<code class="name">{name}</code>' in advanced
    assert f'id="id_{HP_PREFIX}{BUDGET}"' in outside and "Frames to train" in outside
    assert f'id="id_{HP_PREFIX}{KIND}"' in outside and "The teacher gives" in outside
    assert page.index(f'id="id_{HP_PREFIX}{KIND}"') < page.index('id="id_teacher_model"'), "beside the mode and teacher"
    assert "Discount factor." in advanced, "RunConfig's docstrings are the help texts"


def test_advanced_unfolds_when_a_field_in_it_has_an_error(alice_client, team_a, queued):
    data = {**posted_inputs(alice_client.get(reverse("experiments:launch")).content.decode(), "launch-form"),
            "name": "x", HP_PREFIX + "gamma": "7"}
    page = alice_client.post(reverse("experiments:launch"), data).content.decode()
    assert '<details class="advanced" open>' in page and "less than or equal to 1.0" in page


# --- presets --------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS.values(), ids=PRESETS)
def test_preset_values_are_valid_runs_on_every_level_and_mode(preset):
    for env_id in [*STUDY_LEVELS, OUTSIDE_THE_STUDY]:
        for mode in Mode:
            if mode == Mode.ORACLE and not bot_can_play(env_id):
                continue
            values = hyperparameters_for(preset=preset, env_id=env_id, mode=mode.value)
            problems = experiment_problems(env_id=env_id, mode=mode.value, teacher_model=RunConfig.teacher_model,
                                           hyperparameters=values)
            assert problems == {}, (preset.key, env_id, mode, problems)


@pytest.mark.parametrize("mode", [m.value for m in Mode])
@pytest.mark.parametrize("level", FULL.levels, ids=lambda level: level.env_id)
def test_the_study_cell_is_the_study_s_own_configuration(level, mode):
    values = hyperparameters_for(preset=STUDY, env_id=level.env_id, mode=mode)
    launched = run_config(env_id=level.env_id, mode=mode, teacher_model=RunConfig.teacher_model, seed=0,
                          hyperparameters=values)
    assert launched == FULL.config(level, mode, 0)
    assert STUDY.seeds == "0, 1, 2, 3, 4"


def test_defaults_follow_the_level():
    red_ball = STUDY_LEVELS["BabyAI-OpenRedDoor-v0"]
    quick = hyperparameters_for(preset=QUICK, env_id=red_ball.env_id, mode="bidirectional")
    assert quick["return_threshold"] == 0.8 and quick["total_timesteps"] == 16_384
    assert hyperparameters_for(preset=STUDY, env_id=red_ball.env_id, mode="ppo")["total_timesteps"] == 40_960
    assert hyperparameters_for(preset=STUDY, env_id=red_ball.env_id, mode="teacher")["total_timesteps"] == 2048
    outside = hyperparameters_for(preset=STUDY, env_id=OUTSIDE_THE_STUDY, mode="ppo")
    assert outside["return_threshold"] == RunConfig.return_threshold and outside["total_timesteps"] == RunConfig.total_timesteps
    assert hyperparameters_for(preset=PAPER, env_id=DEFAULT_ENV, mode="bidirectional") == hyperparameter_defaults()
    # The page's script gets the same values: the base plus what differs on each study level and mode.
    # (All but the guidance kind, which a preset leaves as chosen.)
    table = preset_table()["study"]
    assert {**table["values"], **table["levels"][red_ball.env_id]["teacher"], KIND: "actions"} == \
        hyperparameters_for(preset=STUDY, env_id=red_ball.env_id, mode="teacher")
    assert all(KIND not in preset["values"] for preset in preset_table().values())


def test_an_empty_form_starts_from_the_paper_preset(alice_client):
    response = alice_client.get(reverse("experiments:launch"))
    form, page = response.context["form"], response.content.decode()
    assert form.preset == PAPER and form["hp_total_timesteps"].value() == RunConfig.total_timesteps
    assert page.count('class="preset"') == 3
    assert re.search(r'data-preset="paper"\s+aria-pressed="true"', page) and page.count('aria-pressed="true"') == 1


def test_a_preset_button_without_javascript_applies_it_to_the_chosen_level(alice_client, team_a, queued):
    typed = {**posted_inputs(alice_client.get(reverse("experiments:launch")).content.decode(), "launch-form"),
             "name": "my cell", "env_id": "BabyAI-UnlockLocal-v0", "mode": "teacher", "seeds": "7"}
    response = alice_client.post(reverse("experiments:launch"), {**typed, "preset": "study"})
    form = response.context["form"]
    assert response.status_code == 200 and not form.is_bound and not Experiment.objects.exists() and queued == []
    assert form.preset == STUDY and form["name"].value() == "my cell" and form["seeds"].value() == STUDY.seeds
    assert form["hp_total_timesteps"].value() == 2048 and form["hp_return_threshold"].value() == 0.8
    assert form["hp_frame_interval_s"].value() == 0.0, "the study's settings"
    kept = alice_client.post(reverse("experiments:launch"), {**typed, "preset": "study", f"hp_{KIND}": "subgoals"})
    assert kept.context["form"][f"hp_{KIND}"].value() == "subgoals", "a preset leaves the guidance kind as chosen"
    # What the page shows now launches as it is.
    launch = alice_client.post(reverse("experiments:launch"), posted_inputs(response.content.decode(), "launch-form"))
    assert launch.status_code == 302
    assert Experiment.objects.get().hyperparameters == hyperparameters_for(preset=STUDY, env_id="BabyAI-UnlockLocal-v0",
                                                                          mode="teacher")
    assert sorted(Run.objects.values_list("seed", flat=True)) == [0, 1, 2, 3, 4]


def test_a_preset_button_carries_back_what_was_typed_escaped_and_writes_nothing(alice_client, team_a, queued):
    typed = {"preset": "quick", "name": "<script>x</script>", "team": "not a team", "env_id": "\x00../x",
             "mode": "ppo2", "teacher_model": "../../etc/passwd", "seeds": "x", "tags": "<b>", "notes": "\u202e"}
    response = alice_client.post(reverse("experiments:launch"), typed)
    page = response.content.decode()
    assert response.status_code == 200 and "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x" not in page
    assert response.context["form"]["hp_total_timesteps"].value() == QUICK.settings["total_timesteps"]
    assert not Experiment.objects.exists() and queued == []


def test_an_unknown_preset_is_refused_and_nothing_launched(alice_client, team_a, queued):
    response = alice_client.post(reverse("experiments:launch"), {"name": "x", "team": team_a.pk, "preset": "huge"})
    assert response.status_code == 400 and "unknown preset" in response.content.decode()
    assert not Experiment.objects.exists() and queued == []


# --- the run-time estimate --------------------------------------------------------------------


def finished(owner, team, mode: str, *, fps: float, wall_s: float, timesteps: int, status: str = "succeeded") -> Run:
    """A run stored as the engine reports one (started, finished with its summary), through the
    sink's service."""
    experiment = services.experiment_create(owner=owner, team=team, name=f"{mode} run", env_id=DEFAULT_ENV, mode=mode,
                                            teacher_model=RunConfig.teacher_model, hyperparameters=small_hyperparameters(),
                                            seeds=[0], enqueue=False)
    run = experiment.runs.get()
    summary = {"timesteps": timesteps, "fps": fps, "wall_s": wall_s, "final_eval_return": 0.5}
    kind = EventKind.RUN_FINISHED if status == "succeeded" else EventKind.RUN_FAILED
    services.run_record_events(run_id=run.pk, events=[
        event(1, EventKind.RUN_STARTED, 0, config={"total_timesteps": timesteps}),
        event(2, kind, timesteps, status=status, summary=summary, error="boom"),
    ])
    return run


def test_run_speeds_are_the_medians_of_the_team_s_recent_succeeded_runs(alice, team_a, bob, team_b):
    # Training at 500, 400 and 600 steps/s, with 10, 30 and 20 s outside the training loop.
    for fps, setup in [(500.0, 10.0), (400.0, 30.0), (600.0, 20.0)]:
        finished(alice, team_a, "bidirectional", fps=fps, wall_s=setup + 8192 / fps, timesteps=8192)
    finished(alice, team_a, "bidirectional", fps=5.0, wall_s=9999.0, timesteps=8192, status="failed")
    finished(bob, team_b, "ppo", fps=900.0, wall_s=20.0, timesteps=8192)  # another team's
    speeds = run_speeds(user=alice)
    assert set(speeds) == {"bidirectional"}
    speed = speeds["bidirectional"]
    assert (speed.runs, speed.steps_per_s) == (3, 500.0) and speed.setup_s == pytest.approx(20.0)
    assert speed.duration_s(16_384) == pytest.approx(20.0 + 16_384 / 500)
    assert set(run_speeds(user=bob)) == {"ppo"}


def test_run_speeds_take_the_latest_runs_only(alice, team_a):
    for i in range(RECENT_RUNS + 3):
        finished(alice, team_a, "ppo", fps=100.0 if i < 3 else 700.0, wall_s=8192 / 700, timesteps=8192)
    speed = run_speeds(user=alice)["ppo"]
    assert speed.runs == RECENT_RUNS and speed.steps_per_s == 700.0


def test_the_page_estimates_from_stored_runs_or_says_it_cannot(alice_client, alice, team_a):
    page = alice_client.get(reverse("experiments:launch")).content.decode()
    assert "no finished <span class=\"estimate-mode\">bidirectional</span> run of your teams yet" in page
    assert 'id="estimate-known" hidden' in page
    finished(alice, team_a, "bidirectional", fps=500.0, wall_s=20.0 + 8192 / 500, timesteps=8192)
    page = alice_client.get(reverse("experiments:launch")).content.decode()
    # The paper's 100,000 frames at 500 steps/s plus 20 s: 220 s; the quick look's 16,384: 53 s.
    assert '<strong id="estimate-duration">about 4 min</strong>' in page and 'id="estimate-unknown" hidden' in page
    assert "16,384</span> frames · seeds 0<span data-duration> · about 55 s a run" in page
    typo = posted_inputs(page, "launch-form") | {"name": "x", HP_PREFIX + "total_timesteps": "lots"}
    assert '<strong id="estimate-duration">–</strong>' in alice_client.post(reverse("experiments:launch"), typo).content.decode()


@pytest.mark.parametrize("seconds, text", [(3, "about 5 s"), (53.1, "about 55 s"), (99, "about 100 s"), (100, "about 2 min"),
                                           (220, "about 4 min"), (89 * 60, "about 89 min"), (3 * 3600, "about 3.0 h")])
def test_durations_read_as_people_say_them(seconds, text):
    assert about(seconds) == text


# --- the empty list and its demo ----------------------------------------------------------------


def test_an_empty_list_explains_and_launches_the_demo_in_one_click(alice_client, team_a, queued,
                                                                    django_capture_on_commit_callbacks):
    page = alice_client.get(reverse("experiments:list")).content.decode()
    assert 'id="empty-state"' in page and "No experiments in your teams yet" in page and 'id="compare-form"' not in page
    posted = posted_inputs(page, "demo-form")
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(reverse("experiments:launch"), posted)
    demo = Experiment.objects.get()
    assert response.status_code == 302 and response.url == reverse("experiments:run", kwargs={"run_id": demo.runs.get().pk})
    assert (demo.name, demo.env_id, demo.mode, demo.team, demo.tags) == (
        "Demo: quick look", "BabyAI-GoToRedBallNoDists-v0", "bidirectional", team_a, ["demo"])
    assert demo.teacher_model == RunConfig.teacher_model
    assert demo.hyperparameters == hyperparameters_for(preset=QUICK, env_id=DEFAULT_ENV, mode="bidirectional")
    assert queued == [(demo.runs.get().pk, demo.runs.get().task_id)], "queued like any launch"
    assert 'id="empty-state"' not in alice_client.get(reverse("experiments:list")).content.decode()


def test_the_demo_asks_for_a_team_when_the_user_has_several(alice_client, alice, team_a, team_b):
    services.team_member_add(team=team_b, user=alice)
    page = alice_client.get(reverse("experiments:list")).content.decode()
    assert "in team <select" in page and posted_inputs(page, "demo-form")["team"] == str(team_a.pk)


def test_without_a_teacher_or_a_team_the_empty_list_says_why_there_is_no_demo(client, alice, team_a, monkeypatch):
    client.force_login(alice)
    monkeypatch.setattr("experiments_app.forms.teacher_choices", lambda: [("", "(none)")])
    page = client.get(reverse("experiments:list")).content.decode()
    assert "No teacher model is installed" in page and 'id="demo-form"' not in page
    client.force_login(make_user("loner", None))
    page = client.get(reverse("experiments:list")).content.decode()
    assert "You are in no team yet" in page and 'id="demo-form"' not in page


def test_a_filtered_empty_list_says_nothing_matches(alice_client, experiment):
    page = alice_client.get(reverse("experiments:list") + "?q=nothing-like-it").content.decode()
    assert "No experiment matches." in page and 'id="empty-state"' not in page
    runs = alice_client.get(reverse("experiments:runs") + "?q=nothing-like-it").content.decode()
    assert "No run matches." in runs


def test_an_empty_runs_list_says_what_a_run_is(alice_client):
    page = alice_client.get(reverse("experiments:runs")).content.decode()
    assert "No runs in your teams yet" in page and reverse("experiments:launch") in page


def test_the_demo_form_is_the_launch_form(alice):
    demo = LaunchForm.demo(user=alice)
    bound = LaunchForm({name: demo[name].value() for name in demo.fields}, user=alice)
    assert bound.is_valid(), bound.errors


# --- in a browser -------------------------------------------------------------------------------


@needs_chromium
@pytest.mark.browser
@pytest.mark.timeout(120)
def test_presets_fill_the_form_follow_the_level_and_estimate_in_the_browser(live_server, alice, team_a, queued):
    value = lambda page, name: page.input_value(f"#id_hp_{name}")  # noqa: E731
    with chromium() as browser:  # (the ORM refuses to run inside Playwright's event loop: no runs yet)
        page = logged_in_page(browser, live_server.url, "alice")
        assert page.is_visible("#demo-form button[type=submit]")
        screenshot(page, "experiments-empty.png")
    finished(alice, team_a, "bidirectional", fps=500.0, wall_s=20.0 + 8192 / 500, timesteps=8192)
    speed = run_speeds(user=alice)["bidirectional"]
    with chromium() as browser:
        page = logged_in_page(browser, live_server.url, "alice")
        page.goto(live_server.url + reverse("experiments:launch"))
        page.wait_for_selector("#launch-form[data-ready='1']")
        assert page.is_visible("#id_hp_total_timesteps") and not page.is_visible("#id_hp_gamma"), "folded under Advanced"
        screenshot(page, "launch-form.png")

        page.click("button[data-preset=quick]")
        assert (value(page, "total_timesteps"), value(page, "probe_states"), page.input_value("#id_seeds")) == ("16384", "50", "0")
        assert page.get_attribute("button[data-preset=quick]", "aria-pressed") == "true"
        assert page.text_content("#estimate-duration") == about(speed.duration_s(16_384)), "the server's wording"
        page.fill("#id_hp_total_timesteps", "50000")
        assert page.text_content("#estimate-duration") == about(speed.duration_s(50_000))

        page.click("button[data-preset=study]")
        page.select_option("#id_env_id", "BabyAI-OpenRedDoor-v0")
        assert (value(page, "total_timesteps"), value(page, "return_threshold")) == ("40960", "0.8"), "follows the level"
        page.select_option("#id_mode", "teacher")
        assert value(page, "total_timesteps") == "2048", "the study's teacher budget"
        assert "No run-time estimate" in page.text_content("#estimate"), "no teacher run to estimate from"
        page.click("details.advanced > summary")
        page.fill("#id_hp_return_threshold", "0.85")  # the user's own value stays
        page.select_option("#id_env_id", "BabyAI-UnlockLocal-v0")
        page.select_option("#id_mode", "ppo")
        assert (value(page, "total_timesteps"), value(page, "return_threshold")) == ("40960", "0.85")
        page.fill("#id_name", "from the browser")
        screenshot(page, "launch-form-advanced.png")
        page.click("#launch-button")
        page.wait_for_url("**/runs/*/")
        assert page.errors == []
    experiment = Experiment.objects.get(name="from the browser")
    assert experiment.hyperparameters == {
        **hyperparameters_for(preset=STUDY, env_id="BabyAI-UnlockLocal-v0", mode="ppo"), "return_threshold": 0.85}
    assert experiment.runs.count() == 5 and len(queued) == 5
