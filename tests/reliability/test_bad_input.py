"""Bad input against every endpoint of the site: schema-driven hypothesis cases (issue 4, item 5).

Each URL pattern of the URLconf, and each WebSocket route, has an entry in ENDPOINTS (a test
fails if one has none). From it and from the endpoint's own forms the cases are generated:
values each field rejects (out-of-range, huge or non-numbers, unknown choices and levels,
over-long text, NUL bytes), decorated with unicode (lone surrogates sent as the invalid UTF-8
a client can send, right-to-left marks, astral characters), unknown parameters, malformed
JSON and other bodies of the wrong type, ids that are no id or no object of the user's, path
traversal, teacher models outside the model directories, and methods the endpoint does not
answer. They are sent by a logged-in team admin through Django's test client with
raise_request_exception=False, so that a 500 is observed instead of raised.

The contract:
* a malformed query string or form: 400, naming the offending field (the JSON API and the
  compare exports in their "fields"; a page re-renders its form with the field's error);
* an id that is not one of the user's objects, or not an id at all: 404;
* a method the endpoint does not answer: 405;
* never a 500, and nothing written: every table's rows and every field a request can change
  are the same afterwards, and no task was queued.
Django's own login and logout views answer as Django does: the login form re-renders with 200
and logs no one in; logout logs out and redirects to the login page, whatever ``next`` says.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.http import HttpResponse
from django.test import Client
from django.urls import Resolver404, resolve
from django.utils.datastructures import MultiValueDict
from django.utils.html import escape
from django.utils.http import url_has_allowed_host_and_scheme
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from experiments_app import health
from experiments_app.api import ApiListForm, MetricsQueryForm
from experiments_app.forms import (
    HP_PREFIX, CompareQueryForm, ExperimentNotesForm, LaunchForm, ListQueryForm, TeamCreateForm, TeamMemberAddForm,
    TeamRoleForm,
)
from experiments_app.hyperparameters import hyperparameter_defaults
from experiments_app.models import Experiment, Run
from experiments_app.routing import websocket_urlpatterns
from tests.web.helpers import PASSWORD, SitePattern, database_state, site_patterns
from workers.teachers import TeacherError, model_dirs, resolve_model

pytestmark = [pytest.mark.reliability, pytest.mark.django_db]
# alice, experiment, run, queued, report: tests/reliability/conftest.py's fixtures.

HYPOTHESIS = dict(
    deadline=None, derandomize=True, database=None, print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.large_base_example],
)
"""Deterministic (derandomized, no example database) and without time limits: for CI."""
FORM = "application/x-www-form-urlencoded"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MIN_CASES = 200

# --- what each endpoint takes -----------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """How one URL pattern takes input: the methods it answers, the form of its query string
    and of its POST body (built for a user), what it answers a form that is not valid, and
    fewer cases of a kind than EXAMPLES where each costs much."""

    methods: tuple[str, ...]
    query: Callable[[Any], forms.Form] | None = None
    body: Callable[[Any], forms.Form] | None = None
    invalid_status: int = 400
    fewer: dict[str, int] = field(default_factory=dict)


ENDPOINTS: dict[str, Endpoint] = {
    "healthz": Endpoint(("GET",)),
    # Django's FormView answers PUT as POST.
    "login": Endpoint(("GET", "POST", "PUT"), body=lambda user: AuthenticationForm(), invalid_status=200),
    "logout": Endpoint(("POST",)),
    "password_change": Endpoint(("GET", "POST"), body=lambda user: PasswordChangeForm(user)),
    "experiments:list": Endpoint(("GET",), query=lambda user: ListQueryForm()),
    "experiments:runs": Endpoint(("GET",), query=lambda user: ListQueryForm()),
    "experiments:compare": Endpoint(("GET",), query=lambda user: CompareQueryForm()),
    # Its page renders ~200 level options: 0.6 s a case under the test client.
    "experiments:launch": Endpoint(("GET", "POST"), body=lambda user: LaunchForm(user=user),
                                   fewer={"body": 6, "malformed": 4}),
    "experiments:experiment": Endpoint(("GET",)),
    "experiments:experiment_notes": Endpoint(("POST",), body=lambda user: ExperimentNotesForm()),
    "experiments:experiment_stop": Endpoint(("POST",)),
    "experiments:experiment_delete": Endpoint(("POST",)),
    "experiments:run": Endpoint(("GET",)),
    "experiments:run_stop": Endpoint(("POST",)),
    "experiments:run_resume": Endpoint(("POST",)),
    "experiments:run_delete": Endpoint(("POST",)),
    "experiments:teams": Endpoint(("GET", "POST"), body=lambda user: TeamCreateForm()),
    "experiments:team": Endpoint(("GET",)),
    "experiments:team_member_add": Endpoint(("POST",), body=lambda user: TeamMemberAddForm()),
    "experiments:team_member_role": Endpoint(("POST",), body=lambda user: TeamRoleForm()),
    "experiments:team_member_remove": Endpoint(("POST",)),
    "experiments:team_leave": Endpoint(("POST",)),
    "experiments:api_experiments": Endpoint(("GET",), query=lambda user: ApiListForm()),
    "experiments:api_experiment": Endpoint(("GET",)),
    "experiments:api_runs": Endpoint(("GET",), query=lambda user: ApiListForm()),
    "experiments:api_run": Endpoint(("GET",)),
    "experiments:api_run_metrics": Endpoint(("GET",), query=lambda user: MetricsQueryForm()),
}
EXAMPLES = {"path": 8, "query": 16, "body": 20, "malformed": 10, "credentials": 12, "next": 8, "clone": 8,
            "ignored query": 8}
"""Cases of each kind of bad input, per endpoint it applies to."""
TEACHER_PATH_CASES = 8
WEBSOCKET_CASES = 25


def planned(key: str) -> dict[str, int]:
    """The kinds of bad input sent to the endpoint, with their number of cases."""
    endpoint = ENDPOINTS[key]
    kinds = {
        "path": bool(pattern(key).params),
        "query": endpoint.query is not None,
        "body": endpoint.body is not None and key != "login",
        "malformed": endpoint.body is not None,
        "credentials": key == "login",
        "next": key in ("login", "logout"),
        "clone": key == "experiments:launch",
        "ignored query": key == "healthz",
    }
    return {kind: endpoint.fewer.get(kind, EXAMPLES[kind]) for kind, applies in kinds.items() if applies} | {
        "method": len(set(METHODS) - set(endpoint.methods))
    }


WEBSOCKET_ROUTES = {"ws/runs/<int:run_id>/"}
"""Fuzzed by the WebSocket tests below."""
EXEMPT_PREFIX = "admin/"
"""Django's admin: its own forms, for staff only; test_isolation checks that it lets no one
else in."""

# --- values ---------------------------------------------------------------------------------

NASTY = ("\x00", "\u202e", "\u200f", "\ufeff", "\ud800", "\udfff", "\U0001f4a9", "\u0663", "\u00b2", "<script>",
         "../", "..\\", "%00", "%2e%2e%2f", "'", '"', "\r\n", " ", "=", "&", ",")
"""Pieces of text that break naive code: NUL, RTL override and mark, BOM, lone surrogates, an
astral character, non-ASCII digits, markup, traversal, quotes, separators."""
nasty_text = st.lists(st.one_of(st.characters(), st.sampled_from(NASTY)), max_size=12).map("".join)
TRAVERSALS = ("../../etc/passwd", "/etc/passwd", "models/../../etc/passwd.gguf", "~/.ssh/id_rsa", "..\\..\\boot.ini",
              "%2e%2e%2fetc%2fpasswd", "/dev/zero", "/proc/self/environ", "models/../bidir_site/settings.py",
              "file:///etc/passwd", "\\\\host\\share\\m.gguf", "./models/../../x.gguf")
UNKNOWN_CHOICES = ("BabyAI-Unknown-v0", "CartPole-v1", "MiniGrid-Empty-5x5-v99", "babyai-gotoredballnodists-v0",
                   "BabyAI-GoToRedBallNoDists-v0 ", "ppo2", "PPO", "none", "null", "0", "-1")
"""Unknown levels (a real gym id that is no BabyAI or MiniGrid level included), modes, models."""
CLASSIC = ("\u00b2", "\x00", "9" * 5000, "x" * 100_000, "-1")
"""Known traps: a digit int() refuses though str.isdigit() accepts it, NUL, a number past
int()'s 4,300 digits, 100,000 characters, a negative number."""
BAD_IDS = ("..", "../..", "-1", "0x1", "1.0", "+1", "1 ", "\u0661", "1\x00", "%00", "..%2f..%2fetc%2fpasswd", "9" * 5000,
           "1e3", "", " ")


def huge(min_size: int) -> st.SearchStrategy[str]:
    """Strings of ``min_size`` characters or more, up to about 50,000."""
    return st.builds(lambda unit, n: unit * n, st.sampled_from(["x", "\u00e9", "\u202e", "\U0001f4a9", "9", "<"]),
                     st.integers(min_size, 3 * min_size + 20_000))


def raw(text: str) -> bytes:
    """UTF-8, lone surrogates included: the invalid UTF-8 a client can send."""
    return text.encode("utf-8", "surrogatepass")


def as_received(text: str) -> str:
    """What Django decodes ``text`` to (invalid UTF-8 becomes U+FFFD)."""
    return raw(text).decode("utf-8", "replace")


def urlencoded(pairs: list[tuple[str, str]]) -> str:
    """A query string or form body, byte for byte as ``raw`` gives its text."""
    return "&".join(f"{quote_plus(raw(key))}={quote_plus(raw(value))}" for key, value in pairs)


def rejects(form_field: forms.Field, value: str) -> bool:
    """Whether the field refuses ``value`` as it arrives in a request."""
    data = form_field.widget.value_from_datadict(MultiValueDict({"v": [as_received(value)]}), MultiValueDict(), "v")
    try:
        form_field.clean(data)
    except Exception:  # ValidationError, or a crash: either way the request must be refused
        return True
    return False


def bad_values(form_field: forms.Field) -> st.SearchStrategy[str]:
    """Values ``form_field`` rejects, built from its kind and bounds, each checked against it."""
    if isinstance(form_field, forms.IntegerField):  # FloatField too
        low, high = form_field.min_value, form_field.max_value
        options = [nasty_text, st.sampled_from(["1e999", "-1e999", "nan", "inf", "0x10", "1_0", "1,5", "--1", "9" * 5000, "1 2"])]
        if low is not None:
            options.append(st.floats(max_value=low, exclude_max=True, allow_nan=False).map(repr))
        if high is not None:
            options += [st.floats(min_value=high, exclude_min=True).map(repr), st.integers(int(high) + 1, 10**40).map(str)]
        if not isinstance(form_field, forms.FloatField):
            options.append(st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != int(f)).map(repr))
        candidates = st.one_of(options)
    elif isinstance(form_field, forms.ChoiceField):  # ModelChoiceField too: levels, modes, models, teams
        candidates = st.one_of(nasty_text, st.integers().map(str), st.sampled_from(UNKNOWN_CHOICES + TRAVERSALS), huge(1))
    elif isinstance(form_field, forms.CharField):
        options = [st.tuples(nasty_text, nasty_text).map(lambda parts: parts[0] + "\x00" + parts[1])]
        if form_field.max_length:
            options.append(huge(form_field.max_length + 1))
        if form_field.required:
            options.append(st.sampled_from(["", " ", "\r\n"]))
        candidates = st.one_of(options)
    else:  # IdListField and other text-parsed fields
        candidates = st.one_of(nasty_text, st.just(",".join(map(str, range(1001)))), st.integers(10**18).map(str))
    return candidates.filter(lambda value: rejects(form_field, value))


def classic_bad_fields(form: forms.Form, names: Sequence[str]) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """For each named field, the first CLASSIC value it rejects: the known traps, tried on every
    field besides what hypothesis draws."""
    return [(name, next(v for v in CLASSIC if rejects(form.fields[name], v)), []) for name in names]


def one_bad_field(form: forms.Form) -> st.SearchStrategy[tuple[str, str, list[tuple[str, str]]]]:
    """(field name, a value it rejects, unknown parameters that must be ignored)."""
    unknown = st.tuples(nasty_text, nasty_text).filter(lambda pair: as_received(pair[0]) not in form.fields)
    return st.sampled_from(sorted(form.fields)).flatmap(
        lambda name: st.tuples(st.just(name), bad_values(form.fields[name]), st.lists(unknown, max_size=3))
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | nasty_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(nasty_text, children, max_size=3),
    max_leaves=8,
)
malformed_bodies = st.tuples(
    st.one_of(
        st.sampled_from([b"{", b'{"name": ', b"[1, 2", b"\xff\xfe\x00", b"%", b"a=%ZZ&b", b"=&=&&", b"--xyz\r\n\r\n"]),
        st.binary(max_size=200),
        json_values.map(lambda value: json.dumps(value).encode()),
    ),
    st.sampled_from(["application/json", "text/plain", FORM, "multipart/form-data; boundary=xyz", "application/octet-stream"]),
)
bad_ids = st.one_of(
    st.integers(10**6, 10**40).map(str),  # no such object, within and beyond 64 bits
    nasty_text.filter(lambda text: not (text.isascii() and text.isdigit())),
    st.sampled_from(BAD_IDS),
)

# --- sending --------------------------------------------------------------------------------


@dataclass
class Prober:
    """Sends requests as one client and checks the contract on each answer; counts them."""

    client: Client
    queued: list
    statuses: Counter = field(default_factory=Counter)

    def send(self, method: str, path: str, body: bytes = b"", content_type: str = FORM, *, expect: set[int],
             client: Client | None = None) -> HttpResponse:
        before = database_state(), len(self.queued)
        response = (client or self.client).generic(method, path, body, content_type)
        self.statuses[response.status_code] += 1
        where = f"{method} {path[:300]} ({content_type}) {body[:300]!r}"
        assert response.status_code != 500, f"500 for {where}"
        assert response.status_code in expect, f"{response.status_code}, expected {sorted(expect)}, for {where}"
        assert (database_state(), len(self.queued)) == before, f"{where} wrote to the database or queued a task"
        return response

    @property
    def cases(self) -> int:
        return sum(self.statuses.values())

    def summary(self) -> str:
        return f"{self.cases} cases: " + ", ".join(f"{n} x {status}" for status, n in sorted(self.statuses.items()))


def cases(strategy: st.SearchStrategy, check: Callable[[Any], None], max_examples: int, explicit: Sequence[Any] = ()) -> None:
    """``check`` on each ``explicit`` value, then on ``max_examples`` values of ``strategy``
    (deterministic: derandomized)."""

    @settings(**HYPOTHESIS, max_examples=max_examples)
    @given(strategy)
    def case(value: Any) -> None:
        check(value)

    for value in explicit:
        case = example(value)(case)
    case()


def errors_named(response: HttpResponse) -> dict[str, list[str]]:
    """The per-field errors the answer shows: the JSON's "fields", or the errors of the page's
    form, each checked to be on the page."""
    if response["Content-Type"].startswith("application/json"):
        return {name: [e["message"] for e in errors] for name, errors in response.json().get("fields", {}).items()}
    page = response.content.decode()
    shown: dict[str, list[str]] = {}
    for key in ("form", "notes_form", "member_form", "role_form"):
        form = response.context.get(key) if response.context else None
        for name, messages in (form.errors if form is not None else {}).items():
            for message in messages:
                assert escape(message) in page, f"the error {message!r} of {name} is not on the page"
            shown[name] = list(messages)
    return shown


# --- the world ------------------------------------------------------------------------------


@pytest.fixture
def prober(alice, experiment, run, queued) -> Prober:
    """alice (a team admin) logged in; her experiment's first run interrupted, so that a
    resume that got through would show."""
    Run.objects.filter(pk=run.pk).update(status=Run.Status.INTERRUPTED)
    probing = Client(raise_request_exception=False)
    probing.force_login(alice)
    return Prober(probing, queued)


def pattern(key: str) -> SitePattern:
    return next(p for p in site_patterns() if p.key == key)


def launch_data(experiment: Experiment) -> dict[str, str]:
    """A launch form that is valid as it is."""
    return {
        "name": "launched by the bad-input test", "team": str(experiment.team_id), "description": "",
        "env_id": "BabyAI-GoToRedBallNoDists-v0", "mode": "ppo", "teacher_model": "", "seeds": "0", "tags": "", "notes": "",
        **{HP_PREFIX + name: str(value) for name, value in hyperparameter_defaults().items()},
    }


NEW_PASSWORD = "a-new-long-test-password-43"
VALID_BODIES: dict[str, Callable[[Experiment], dict[str, str]]] = {
    "experiments:launch": launch_data,
    "experiments:experiment_notes": lambda experiment: {"notes": "kept", "tags": "kept"},
    "experiments:teams": lambda experiment: {"name": "a new team"},
    "experiments:team_member_add": lambda experiment: {"username": "bob", "role": "member"},  # bob: in team B only
    "experiments:team_member_role": lambda experiment: {"role": "admin"},
    "password_change": lambda experiment: {"old_password": PASSWORD, "new_password1": NEW_PASSWORD,
                                           "new_password2": NEW_PASSWORD},
}

# --- tests ----------------------------------------------------------------------------------


def test_every_url_pattern_and_websocket_route_has_a_bad_input_spec(report) -> None:
    keys = {p.key for p in site_patterns() if not p.regex.startswith(EXEMPT_PREFIX)}
    assert keys == set(ENDPOINTS), f"no spec: {sorted(keys - set(ENDPOINTS))}; stale: {sorted(set(ENDPOINTS) - keys)}"
    assert {str(route.pattern) for route in websocket_urlpatterns} == WEBSOCKET_ROUTES
    report(f"{len(ENDPOINTS)} URL patterns and {len(WEBSOCKET_ROUTES)} WebSocket route covered; "
           f"{sum(1 for p in site_patterns() if p.regex.startswith(EXEMPT_PREFIX))} admin patterns left to test_isolation")


@pytest.mark.parametrize("key", sorted(ENDPOINTS))
def test_bad_input_is_refused_with_4xx_and_nothing_written(key: str, prober: Prober, alice, bob, experiment, run,
                                                           monkeypatch, report) -> None:
    endpoint = ENDPOINTS[key]
    site = pattern(key)
    plan = planned(key)
    url = site.url(experiment_id=experiment.pk, run_id=run.pk, team_id=experiment.team_id, user_id=alice.pk)  # alice's own

    for method in sorted(set(METHODS) - set(endpoint.methods)):
        prober.send(method, url, expect={405})

    if "path" in plan:  # ids that are no ids, or no object of the user's, traversal included
        def bad_path(segment: str) -> None:
            path = "/" + site.template % {name: quote(raw(segment), safe="") for name in site.params}
            try:
                resolve(unquote(path))
            except Resolver404:
                prober.send(endpoint.methods[0], path, expect={404})
            else:
                assume(False)  # "1/stop" and the like reach another (tested) endpoint

        cases(bad_ids, bad_path, plan["path"])

    if "query" in plan:  # a query string with one field its form rejects
        form = endpoint.query(alice)

        def bad_query(case: tuple[str, str, list[tuple[str, str]]]) -> None:
            name, value, unknown = case
            response = prober.send("GET", f"{url}?{urlencoded([*unknown, (name, value)])}", expect={endpoint.invalid_status})
            assert name in errors_named(response), f"{name}={value[:100]!r}: {response.content[:500]!r}"

        cases(one_bad_field(form), bad_query, plan["query"], classic_bad_fields(form, sorted(form.fields)))

    if "body" in plan:  # a form with one field it rejects, the others valid
        form = endpoint.body(alice)
        valid = VALID_BODIES[key](experiment)

        def bad_body(case: tuple[str, str, list[tuple[str, str]]]) -> None:
            name, value, unknown = case
            body = urlencoded([*unknown, *{**valid, name: value}.items()]).encode()
            response = prober.send("POST", url, body, expect={endpoint.invalid_status})
            assert name in errors_named(response), f"{name}={value[:100]!r}"

        # The level of the known traps on the general fields only: the launch page costs 0.6 s a case.
        general = [name for name in sorted(form.fields) if not name.startswith(HP_PREFIX)]
        cases(one_bad_field(form), bad_body, plan["body"], classic_bad_fields(form, general))

    if "malformed" in plan:  # bodies that are no form: malformed JSON, JSON, binary, broken encodings
        cases(malformed_bodies, lambda case: prober.send("POST", url, case[0], case[1], expect={endpoint.invalid_status, 400}),
              plan["malformed"])

    if "credentials" in plan:
        anonymous = Client(raise_request_exception=False)

        def bad_credentials(case: tuple[str, str]) -> None:
            response = prober.send("POST", url, urlencoded([("username", case[0]), ("password", case[1])]).encode(),
                                   expect={200}, client=anonymous)
            # Django's login page says so in one sentence, whichever field was wrong.
            assert response.context["form"].errors and "didn't match" in response.content.decode()
            assert "_auth_user_id" not in anonymous.session

        cases(st.tuples(st.one_of(nasty_text, huge(151), st.just("alice")), st.one_of(nasty_text, huge(4097))),
              bad_credentials, plan["credentials"])

    if "next" in plan:  # open redirects: logging in or out never sends the user off-site
        def off_site_next(target: str) -> None:
            visitor = Client(raise_request_exception=False)
            if key == "logout":
                visitor.force_login(alice)
            body = urlencoded([("username", "alice"), ("password", PASSWORD), ("next", target)]).encode()
            response = prober.send("POST", f"{url}?{urlencoded([('next', target)])}", body, expect={302}, client=visitor)
            assert url_has_allowed_host_and_scheme(response["Location"], {"testserver"}), response["Location"]
            assert urlsplit(response["Location"]).netloc in ("", "testserver")

        cases(st.one_of(st.sampled_from(["//evil.example", "https://evil.example/", "\\\\evil.example", "/\\evil.example",
                                         "javascript:alert(1)", "http:evil.example", "///evil.example", " //evil.example"]),
                        nasty_text.map(lambda text: "//evil.example/" + text)), off_site_next, plan["next"])

    if "clone" in plan:  # ?clone= an id that is no id, or no experiment of the user's
        cases(bad_ids.filter(lambda text: text.strip()), lambda clone: prober.send(
            "GET", f"{url}?{urlencoded([('clone', clone)])}", expect={404}), plan["clone"])

    if "ignored query" in plan:  # it takes no input: any query string is ignored
        # Without the worker ping, which waits 1.5 s for an answer no test worker gives.
        monkeypatch.setattr(health, "CHECKS", {name: c for name, c in health.CHECKS.items() if name != "workers"})
        cases(st.lists(st.tuples(nasty_text, nasty_text), max_size=4),
              lambda pairs: prober.send("GET", f"{url}?{urlencoded(pairs)}", expect={200}), plan["ignored query"])

    assert prober.cases >= sum(plan.values()) > 0
    report(f"{prober.summary()}; 0 x 500, nothing written")


def test_teacher_models_outside_the_model_directories_cannot_be_chosen(prober: Prober, experiment, tmp_path,
                                                                     monkeypatch, report) -> None:
    """Path traversal: the form offers only installed models and the GGUF files of the model
    directories (by name); the engine's resolver refuses any path outside those directories,
    even to a real GGUF file."""
    outside = tmp_path / "outside" / "real.gguf"
    outside.parent.mkdir()
    outside.write_bytes(b"GGUF" + bytes(64))
    inside = tmp_path / "models"
    inside.mkdir()
    (inside / "link.gguf").symlink_to(outside.parent)  # a directory link: no file through it
    monkeypatch.setenv("BIDIR_MODEL_DIRS", str(inside))
    paths = st.one_of(
        st.sampled_from([*TRAVERSALS, str(outside), f"{inside}/../outside/real.gguf", f"{inside}/link.gguf/real.gguf",
                         "../outside/real.gguf"]),
        st.tuples(st.sampled_from(["", "models/", f"{inside}/", "~/", "/"]),
                  st.lists(st.sampled_from(["..", ".", "etc", "x.gguf"]), min_size=1, max_size=5),
                  ).map(lambda parts: parts[0] + "/".join(parts[1])),
    )
    url = pattern("experiments:launch").url()
    resolver: Counter = Counter()

    def choose(path: str) -> None:
        body = urlencoded([*{**launch_data(experiment), "mode": "bidirectional", "teacher_model": path}.items()]).encode()
        response = prober.send("POST", url, body, expect={400})
        assert "teacher_model" in errors_named(response)
        try:
            found = resolve_model(path)
        except TeacherError:
            resolver["refused"] += 1
        else:
            assert any(found.resolve().is_relative_to(d) for d in model_dirs()), f"{path!r} -> {found}"
            resolver["inside a model directory"] += 1

    cases(paths, choose, TEACHER_PATH_CASES)
    assert prober.cases >= TEACHER_PATH_CASES
    report(f"{prober.summary()} (teacher model paths: the form refused each; the engine's resolver: "
           f"{dict(resolver)}); 0 x 500, nothing written")


def not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


WS_FRAMES = st.one_of(
    json_values.map(json.dumps),
    st.fixed_dictionaries({"type": st.just("backfill")}, optional={"last_seq": json_values}).map(json.dumps),
    st.builds(lambda n: json.dumps({"type": "backfill", "last_seq": n}), st.integers(min_value=-(10**30), max_value=10**30)),
    huge(1).map(json.dumps),
    st.one_of(st.sampled_from(["{not json", '{"type": "backfill", ', "[1, 2"]), nasty_text).filter(not_json),
    st.binary(max_size=100),
).filter(bool)  # (the test communicator sends no empty frame)
"""Text frames of any JSON, of back-fill requests with any last_seq, and of no JSON; binary frames."""


def reads_as_backfill(frame: str | bytes) -> bool:
    """Whether the consumer takes the frame for a back-fill request."""
    if not isinstance(frame, str) or not_json(frame):
        return False
    content = json.loads(frame)
    return isinstance(content, dict) and content.get("type") == "backfill"


@pytest.mark.django_db(transaction=True)
def test_the_websocket_ignores_frames_it_cannot_use(run, alice, report) -> None:
    """Every frame that is not a valid back-fill request is ignored, or read as one from the
    start (a JSON object of type "backfill", whatever its last_seq); either way the connection
    stays usable: a valid request after it is answered."""
    answers: Counter = Counter()

    async def exchange(frame: str | bytes) -> None:
        as_backfill = reads_as_backfill(frame)
        comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/runs/{run.pk}/")
        comm.scope["user"] = alice
        assert (await comm.connect())[0]
        await comm.send_to(**{"text_data" if isinstance(frame, str) else "bytes_data": frame})
        await comm.send_json_to({"type": "backfill", "last_seq": 0})
        for _ in range(1 + as_backfill):  # each back-fill answer ends with the run's state
            while not (reply := await comm.receive_json_from(timeout=5)).get("backfill"):
                assert reply["type"] in ("events", "run"), reply
        assert await comm.receive_nothing(timeout=0.05)
        await comm.disconnect()
        answers["read as a back-fill" if as_backfill else "ignored"] += 1

    cases(WS_FRAMES, lambda frame: async_to_sync(exchange)(frame), WEBSOCKET_CASES)
    assert sum(answers.values()) >= WEBSOCKET_CASES
    report(f"{sum(answers.values())} WebSocket frames ({dict(answers)}); the connection answered the next request "
           "after each; 0 crashes")


def test_the_bad_input_tests_send_at_least_200_cases(report) -> None:
    """Counted from the plan, which each test above asserts it carried out in full, so that the
    total holds however the tests are selected or ordered."""
    kinds: Counter = Counter()
    for key in ENDPOINTS:
        kinds.update(planned(key))
    kinds.update({"teacher model path": TEACHER_PATH_CASES, "websocket frame": WEBSOCKET_CASES})
    total = sum(kinds.values())
    assert total >= MIN_CASES
    report(f"at least {total} bad-input cases in all (each test asserts it sent its share; {MIN_CASES} required): "
           + ", ".join(f"{n} {kind}" for kind, n in kinds.most_common()))
