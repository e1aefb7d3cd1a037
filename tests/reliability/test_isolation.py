"""No one let in (issue 4, item 6): team isolation, anonymous access, CSRF, the WebSocket's
origin check, and escaping of user and LLM text, each over the whole URLconf.

* A member of team B cannot list, read, stream, export, stop, resume or delete team A's runs
  and experiments, nor edit their notes and tags, nor see or change team A's members: every
  URL pattern of the app, with A's ids,
  answers B exactly what it answers for an id that does not exist (404), writes nothing, and
  no answer B gets contains anything of A's.
* Anonymous users reach the login pages (the site's and the admin's, staff only) and /healthz,
  which is public so that load balancers can probe it, and tells them only each check's verdict.
  Every other pattern sends them to a login page (the API: 401).
* Every pattern refuses a POST without a CSRF token (403), and one with a token from another
  origin.
* The WebSocket, through the real ASGI application (its origin validator included), refuses a
  foreign or missing Origin, closes on anonymous users (4401) and other teams (4403).
* Names, descriptions, notes, tags, team names, hints, errors and teacher faults holding markup
  are escaped in every page that shows them; JSON in pages is json_script's (no "<" inside);
  no page has an inline script of its own; the JSON and CSV exports are not HTML.
"""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.http import HttpResponse
from django.test import Client
from django.urls import resolve
from django.utils.html import escape

from experiments_app import health, services
from experiments_app.models import Experiment, Run, Team
from tests.web.helpers import (
    PASSWORD, SitePattern, database_state, event, hint_data, record_finished_run, site_patterns,
    small_hyperparameters,
)
from workers.events import EventKind

pytestmark = [pytest.mark.reliability, pytest.mark.django_db]
# alice, bob, team_a, team_b, experiment, run, queued, clean_channel_layer, report:
# tests/reliability/conftest.py's fixtures.

ROOT = Path(__file__).resolve().parents[2]
SECRET = "alpha-SECRET"
"""In every text of team A's: none of B's answers may contain it."""
PAYLOAD = "x</script><script>alert(1)</script><img src=x onerror=alert(2)>\"'"
RAW = ("<script>alert", "<img src=x", "</script><script>")
"""What must never appear in a page as it was typed."""
PUBLIC = {"login", "admin:login", "healthz"}
"""The patterns anonymous users reach."""
LOGIN_PAGES = ("/accounts/login/", "/admin/login/")
EXPORTS = ("html", "json", "csv", "summary-csv")
"""The compare page's formats."""


def sample_url(site: SitePattern, experiment: Experiment, run: Run) -> str:
    """The pattern's URL for the given experiment and run (admin patterns: their objects),
    checked to resolve to the pattern's own view."""
    url = site.url(
        experiment_id=experiment.pk, run_id=run.pk, team_id=experiment.team_id, user_id=experiment.owner_id,
        object_id=experiment.pk, id=experiment.owner_id,
        content_type_id=ContentType.objects.get_for_model(Experiment).pk, app_label="experiments_app", url="no-such-page/",
    )
    assert resolve(url).func is site.view, f"{url} does not reach {site.key}"
    return url


def app_patterns() -> list[SitePattern]:
    """The experiments app's patterns: the team-scoped ones."""
    return [p for p in site_patterns() if p.key.startswith("experiments:")]


@pytest.fixture
def team_a_data(alice, team_a, experiment, run, queued) -> Experiment:
    """Team A's experiment, every text of it marked SECRET: run 0 interrupted (resumable), run
    1 finished with metrics, a hint and an error (deletable)."""
    Experiment.objects.filter(pk=experiment.pk).update(
        name=f"{SECRET} name", description=f"{SECRET} description", notes=f"{SECRET} notes", tags=[f"{SECRET}-tag"])
    Run.objects.filter(pk=run.pk).update(status=Run.Status.INTERRUPTED, error=f"{SECRET} error")
    finished = experiment.runs.get(seed=1)
    record_finished_run(finished, [0.2, 0.6])
    hint = event(10, EventKind.HINT, 10, **hint_data(situation=f"{SECRET} hint"))
    services.run_record_events(run_id=finished.pk, events=[hint])
    experiment.refresh_from_db()
    return experiment


def client_for(user=None, **kwargs: Any) -> Client:
    """A test client that shows a 500 rather than raising it, logged in as ``user`` if given."""
    client = Client(raise_request_exception=False, **kwargs)
    if user is not None:
        client.force_login(user)
    return client


def body_text(response: HttpResponse) -> str:
    """The answer's text, streamed or not."""
    return b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()


# --- other teams ----------------------------------------------------------------------------


def test_another_team_cannot_tell_team_a_objects_from_nothing(team_a_data, bob, report) -> None:
    """Every app pattern with an id, GET and POST, as B on A's ids: byte for byte what B gets
    for an id that does not exist (404, or 405 for a method the pattern does not answer), and
    nothing written."""
    client = client_for(bob)
    run_a = team_a_data.runs.get(seed=1)
    missing = Run(pk=10**9, experiment=Experiment(pk=10**9, team_id=10**9, owner_id=10**9))
    checked = 0
    before = database_state()
    for site in app_patterns():
        if not site.params:
            continue
        for method in ("GET", "POST"):
            theirs = client.generic(method, sample_url(site, team_a_data, run_a))
            nothing = client.generic(method, sample_url(site, missing.experiment, missing))
            assert (theirs.status_code, theirs.content) == (nothing.status_code, nothing.content), f"{method} {site.key}"
            assert theirs.status_code in (404, 405) and SECRET not in theirs.content.decode()
            checked += 1
    assert database_state() == before, "B wrote"
    report(f"{checked} pattern x method pairs with A's ids: as for a missing id (404/405), nothing written, nothing shown")


def test_another_team_sees_nothing_of_team_a_in_lists_exports_api_and_forms(team_a_data, bob, team_b, report) -> None:
    """Every app pattern without an id, asked about A's objects: none of A's text in any answer
    (while B's own experiment is listed); launching into A's team or cloning A's experiment is
    refused, nothing written."""
    services.experiment_create(owner=bob, team=team_b, name="bob's own", env_id="BabyAI-GoToRedBallNoDists-v0",
                               mode="ppo", teacher_model="", hyperparameters=small_hyperparameters(), seeds=[0])
    client = client_for(bob)
    patterns = {p.key: p for p in app_patterns() if not p.params}
    runs = ",".join(str(r.pk) for r in team_a_data.runs.all())
    queries = {
        "experiments:list": [{}, {"owner": "alice"}, {"q": SECRET}, {"tag": f"{SECRET}-tag"}],
        "experiments:runs": [{}, {"owner": "alice"}, {"q": SECRET}],
        "experiments:compare": [{"runs": runs, "experiments": team_a_data.pk, "format": f} for f in EXPORTS],
        "experiments:launch": [{}],
        "experiments:teams": [{}],
        "experiments:api_experiments": [{}, {"owner": "alice"}, {"q": SECRET}],
        "experiments:api_runs": [{}, {"status": "interrupted"}],
    }
    assert set(patterns) == set(queries), "a new pattern: say what B may ask it"
    answers = 0
    for key, variants in queries.items():
        for query in variants:
            response = client.get(f"{patterns[key].url()}?{urlencode(query)}")
            assert response.status_code == 200, (key, query)
            shown = body_text(response)
            for value in map(str, query.values()):  # the search form shows what was searched
                shown = shown.replace(escape(value), "").replace(value, "")
            assert SECRET not in shown and "alice" not in shown, (key, query)
            answers += 1
    assert [e["name"] for e in client.get("/api/experiments/").json()["results"]] == ["bob's own"]
    assert "bob&#x27;s own" in client.get("/").content.decode()
    assert json.loads(client.get(f"/compare/?runs={runs}&format=json").content)["runs"] == []
    assert client.get(f"/experiments/new/?clone={team_a_data.pk}").status_code == 404
    before = database_state()
    launch = client.post("/experiments/new/", {"name": "into A", "team": team_a_data.team_id, "mode": "ppo", "seeds": "0"})
    assert launch.status_code == 400 and "team" in launch.context["form"].errors and database_state() == before
    report(f"{answers} list, export and API answers to B hold nothing of A's; cloning A's experiment: 404; "
           "launching into A's team: 400, nothing written")


def test_another_team_cannot_join_or_change_team_a_with_valid_requests(team_a_data, alice, bob, team_a, report) -> None:
    """Well-formed requests of B's on team A's members (add himself as admin, demote or remove
    A's admin, leave A): each a 404, as for a team that does not exist, and nothing written."""
    client = client_for(bob)
    before = database_state()
    requests = {
        f"/teams/{team_a.pk}/members/": {"username": "bob", "role": "admin"},
        f"/teams/{team_a.pk}/members/{alice.pk}/role/": {"role": "member"},
        f"/teams/{team_a.pk}/members/{alice.pk}/remove/": {},
        f"/teams/{team_a.pk}/leave/": {},
    }
    for url, body in requests.items():
        assert client.post(url, body).status_code == 404, url
    assert database_state() == before
    report(f"{len(requests)} valid membership requests of B's on team A: 404, nothing written")


@pytest.mark.django_db(transaction=True)
def test_another_team_cannot_stream_team_a_runs(team_a_data, alice, bob, clean_channel_layer, report) -> None:
    """Through the real ASGI application: B's session is closed with 4403 and gets no event,
    as for a run that does not exist; A's own session streams."""
    run_id, origin = team_a_data.runs.get(seed=1).pk, b"http://testserver"
    verdicts = async_to_sync(websocket_verdicts)(
        [("A's run, as B", bob, run_id, origin), ("no such run, as B", bob, 10**9, origin),
         ("A's run, as A", alice, run_id, origin)])
    assert verdicts == {"A's run, as B": "closed 4403", "no such run, as B": "closed 4403", "A's run, as A": "streamed"}
    report(f"WebSocket: {verdicts}")


# --- anonymous users ------------------------------------------------------------------------


def test_anonymous_users_reach_only_the_login_pages_and_healthz(team_a_data, monkeypatch, report) -> None:
    """Every pattern of the URLconf, GET and POST, without a session."""
    # Fast checks that say something a stranger must not learn.
    monkeypatch.setattr(health, "CHECKS", {"database": lambda: f"{SECRET} db host", "workers": lambda: 1 / 0})
    client = client_for()
    reached, outcomes = set(), {}
    run_a = team_a_data.runs.first()
    before = database_state()
    for site in site_patterns():
        url = sample_url(site, team_a_data, run_a)
        for method in ("GET", "POST"):
            response = client.generic(method, url)
            assert SECRET not in body_text(response), f"{method} {site.key}"
            status = response.status_code
            if status in (200, 503) and method == "GET":
                reached.add(site.key)
            elif status == 302:  # to a login page (the admin's logout: to the admin's index, which is checked too)
                assert urlsplit(response["Location"]).path in (*LOGIN_PAGES, "/admin/"), f"{method} {site.key}"
            elif status == 401:
                assert site.key.startswith("experiments:api") and response.json() == {"error": "not logged in"}
            else:
                # A method it does not answer (which tells nothing), or a login form's errors.
                assert status == 405 or (status == 200 and site.key in PUBLIC), f"{method} {site.key}: {status}"
            outcomes[status] = outcomes.get(status, 0) + 1
    assert reached == PUBLIC and database_state() == before
    verdicts = client.get("/healthz").json()
    assert verdicts == {"database": {"ok": True}, "workers": {"ok": False}, "ok": False}, "only each check's verdict"
    report(f"{len(site_patterns())} patterns x GET/POST, anonymous: reached only {sorted(reached)}; "
           f"statuses {dict(sorted(outcomes.items()))}; /healthz says only verdicts")


def test_logged_in_users_get_healthz_details(alice, monkeypatch) -> None:
    monkeypatch.setattr(health, "CHECKS", {"database": lambda: "sqlite", "workers": lambda: 1 / 0})
    body = client_for(alice).get("/healthz").json()
    assert body["database"]["detail"] == "sqlite" and "ZeroDivisionError" in body["workers"]["error"]


@pytest.mark.django_db(transaction=True)
def test_the_websocket_checks_origin_and_session(run, alice, clean_channel_layer, report) -> None:
    """The real ASGI application: a foreign, look-alike or missing Origin is refused before
    anything else; an anonymous user is closed with 4401."""
    foreign = [b"http://evil.example", b"http://testserver.evil.example", b"http://evil.example/testserver", b"null",
               b"http://testserver@evil.example", b"file://", None]
    checks = [(f"origin {o!r}", alice, run.pk, o) for o in foreign] + [("anonymous", None, run.pk, b"http://testserver")]
    verdicts = async_to_sync(websocket_verdicts)(checks)
    assert all(v == "refused" for k, v in verdicts.items() if k.startswith("origin")), verdicts
    assert verdicts["anonymous"] == "closed 4401"
    report(f"WebSocket: {len(foreign)} foreign or missing origins refused; anonymous closed 4401")


async def websocket_verdicts(checks: list[tuple[str, object, int, bytes | None]]) -> dict[str, str]:
    """{name: "refused" | "closed <code>" | "streamed"} for each (name, user, run id, Origin),
    through the real ASGI application (imported here, as the consumer tests do: once Django is set up)."""
    from bidir_site.asgi import application

    verdicts = {}
    for name, user, run_id, origin in checks:
        headers = [(b"host", b"testserver")]
        if origin is not None:
            headers.append((b"origin", origin))
        if user is not None:
            session = await database_sync_to_async(lambda u=user: client_for(u).cookies["sessionid"].value)()
            headers.append((b"cookie", f"sessionid={session}".encode()))
        comm = WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=headers)
        connected, _ = await comm.connect()
        if not connected:
            verdicts[name] = "refused"
            continue
        await comm.send_json_to({"type": "backfill", "last_seq": 0})
        first = await comm.receive_output(timeout=5)
        if first["type"] == "websocket.close":
            assert await comm.receive_nothing(timeout=0.1), "no data after the close"
            verdicts[name] = f"closed {first['code']}"
        else:
            verdicts[name] = "streamed"
        await comm.disconnect()
    return verdicts


# --- CSRF -----------------------------------------------------------------------------------


def test_every_pattern_refuses_a_post_without_a_csrf_token(team_a_data, alice, report) -> None:
    """Every pattern of the URLconf, for a logged-in user whose browser another site makes
    post: 403 without a token, and with a token but another site's Origin; nothing written.
    The page's own post goes through."""
    client = client_for(alice, enforce_csrf_checks=True)
    before = database_state()
    run_a = team_a_data.runs.first()
    for site in site_patterns():
        response = client.post(sample_url(site, team_a_data, run_a), {"notes": "x", "tags": ""})
        assert response.status_code == 403 and b"CSRF" in response.content, site.key
    assert database_state() == before
    notes = f"/experiments/{team_a_data.pk}/notes/"
    client.get(f"/experiments/{team_a_data.pk}/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    signed = {"notes": "signed", "tags": "", "csrfmiddlewaretoken": token}
    cross_site = client.post(notes, signed, headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403 and database_state() == before, "a token from another origin"
    assert client.post(notes, signed).status_code == 302, "the page's own post"
    report(f"{len(site_patterns())} patterns refuse a POST without a token (403); a cross-origin post with a token too")


# --- escaping -------------------------------------------------------------------------------


class Scripts(HTMLParser):
    """The page's <script> elements: (attributes, content)."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._open = dict(attrs)
            self.scripts.append((self._open, ""))

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.scripts[-1] = (self._open, self.scripts[-1][1] + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._open = None


def assert_escaped(response: HttpResponse, where: str, own_page: bool = True) -> str:
    """The answer shows no markup as typed: HTML pages escape it (and, ours, carry no inline
    script but json_script's JSON, which holds no "<"); JSON and CSV are not served as HTML."""
    kind = response["Content-Type"].split(";")[0]
    assert response["X-Content-Type-Options"] == "nosniff", where
    text = body_text(response)
    if kind != "text/html":
        assert kind in ("application/json", "text/csv"), f"{where}: {kind}"
        return kind
    for raw in RAW:
        assert raw not in text, f"{where} shows {raw!r} as typed"
    if own_page:
        parser = Scripts()
        parser.feed(text)
        for attrs, content in parser.scripts:
            if "src" not in attrs:
                assert attrs.get("type") == "application/json" and "<" not in content, f"{where}: inline script {attrs}"
    return kind


def test_user_and_llm_text_is_escaped_in_every_page(team_a_data, alice, team_a, queued, report) -> None:
    """Every GET pattern of the app (and Django's admin, as a superuser) over an experiment
    whose every text, team name, run error, teacher fault and hint hold markup."""
    Team.objects.filter(pk=team_a.pk).update(name=PAYLOAD[:100])
    Experiment.objects.filter(pk=team_a_data.pk).update(
        name=PAYLOAD, description=PAYLOAD, notes=PAYLOAD, tags=[PAYLOAD[:40]])
    run_a = team_a_data.runs.get(seed=1)
    Run.objects.filter(pk=run_a.pk).update(error=PAYLOAD, teacher_fault=PAYLOAD)
    services.run_record_events(run_id=run_a.pk, events=[event(11, EventKind.HINT, 11, **hint_data(
        situation=PAYLOAD, feedback=PAYLOAD, teacher_action=PAYLOAD[:20], action_taken=PAYLOAD[:20]))])
    formula = services.experiment_create(
        owner=alice, team=team_a, name='=HYPERLINK("http://evil.example")', env_id="BabyAI-GoToRedBallNoDists-v0",
        mode="ppo", teacher_model="", hyperparameters=small_hyperparameters(), seeds=[0])
    record_finished_run(formula.runs.get(), [0.1, 0.3])
    client = client_for(alice)
    runs = f"{run_a.pk},{formula.runs.get().pk}"
    extra = {
        "experiments:list": [{"q": PAYLOAD}, {"tag": PAYLOAD[:40]}],
        "experiments:runs": [{"q": PAYLOAD}],
        "experiments:compare": [{"runs": runs, "experiments": team_a_data.pk, "format": f} for f in EXPORTS]
                               + [{"runs": PAYLOAD}],
        "experiments:launch": [{"clone": team_a_data.pk}],
        "experiments:api_experiments": [{"q": PAYLOAD}],
        "experiments:api_run_metrics": [{"kind": PAYLOAD}],
    }
    kinds: dict[str, int] = {}
    showing: set[str] = set()
    for site in app_patterns() + [p for p in site_patterns() if p.key == "login"]:
        url = sample_url(site, team_a_data, run_a)
        for query in [{}, *extra.get(site.key, [])]:
            response = client.get(f"{url}?{urlencode(query)}" if query else url)
            if response.status_code == 405:
                continue
            assert response.status_code in (200, 400), f"{site.key} {query}: {response.status_code}"
            kind = assert_escaped(response, f"{site.key} {query}")
            kinds[kind] = kinds.get(kind, 0) + 1
            if kind == "text/html" and escape(PAYLOAD) in response.content.decode():
                showing.add(site.key)
    # Not vacuous: the pages that show the name show it, escaped.
    assert {f"experiments:{page}" for page in ("list", "runs", "experiment", "run", "compare", "launch")} <= showing, showing
    for page in (f"/teams/{team_a.pk}/", "/teams/"):
        assert escape(PAYLOAD[:100]) in client.get(page).content.decode(), f"{page} shows the team's name, escaped"
    cells = [cell for row in csv.reader(io.StringIO(body_text(client.get(f"/compare/?runs={runs}&format=summary-csv"))))
             for cell in row]
    assert any(c.startswith("'=HYPERLINK") for c in cells) and not any(c.startswith("=") for c in cells), "CSV injection"

    # Messages that repeat a name: after launching, stopping and deleting.
    data = {**client.get(f"/experiments/new/?clone={team_a_data.pk}").context["form"].initial, "name": PAYLOAD, "seeds": "3"}
    launched = client.post("/experiments/new/", data, follow=True)
    assert "Launched" in launched.content.decode()
    assert_escaped(launched, "after launching")
    copy = Experiment.objects.latest("pk")
    assert_escaped(client.post(f"/experiments/{copy.pk}/stop/", follow=True), "after stopping")
    deleted = client.post(f"/experiments/{copy.pk}/delete/", follow=True)
    assert "Deleted" in deleted.content.decode()
    assert_escaped(deleted, "after deleting")

    # Django's admin, for staff.
    root = get_user_model().objects.create_superuser("root", password=PASSWORD)
    admin = client_for(root)
    for model in ("experiment", "run", "hint", "team"):
        for url in (f"/admin/experiments_app/{model}/", f"/admin/experiments_app/{model}/?q=x"):
            assert_escaped(admin.get(url), url, own_page=False)
    assert_escaped(admin.get(f"/admin/experiments_app/experiment/{team_a_data.pk}/change/"), "admin change page", own_page=False)
    assert_escaped(admin.get(f"/admin/experiments_app/run/{run_a.pk}/change/"), "admin run page", own_page=False)
    report(f"markup escaped in {sum(kinds.values())} answers ({kinds}), the launch and delete messages and 10 admin pages; "
           "CSV formulas quoted")


def test_hints_reach_the_page_only_as_data_set_as_text(team_a_data, alice, report) -> None:
    """LLM text never goes into the HTML: the run page gets hints over the WebSocket, as JSON,
    and its script (and every other) sets text with textContent, never as markup."""
    run_a = team_a_data.runs.get(seed=1)
    services.run_record_events(run_id=run_a.pk, events=[event(12, EventKind.HINT, 12, **hint_data(situation=PAYLOAD))])
    page = client_for(alice).get(f"/runs/{run_a.pk}/").content.decode()
    assert PAYLOAD not in page and all(raw not in page for raw in RAW)
    sinks = re.compile(r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\(|\.html\(")
    scripts = sorted((ROOT / "static").rglob("*.js"))
    offenders = {str(path.relative_to(ROOT)): sinks.findall(path.read_text()) for path in scripts}
    assert scripts and not any(offenders.values()), offenders
    report(f"the run page holds no hint; {len(scripts)} scripts of ours set no markup (innerHTML, document.write, eval...)")
