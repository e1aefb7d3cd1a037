"""Fixtures for the reliability tests.

* ``stack``: a real dashboard of the test's own (``tests.stack.Stack``: Redis, daphne, Celery
  workers as ``make run`` starts them, on a copy of a migrated temporary SQLite database),
  nothing started yet; stopped after the test.
* ``browser``: headless Chromium (skipped where it is not installed).
* ``report``: the figures a test measured, printed in the run's summary (no ``-s`` needed)
  and written to test-artifacts/reliability.txt.
* The web tests' fixtures (users in two teams, a launched experiment, ...), for the tests
  that run in this process on pytest-django's database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import ARTIFACTS, chromium
from tests.stack import Stack, make_database
from tests.web.conftest import alice, bob, clean_channel_layer, experiment, queued, run, team_a, team_b  # noqa: F401

FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for line in FIGURES:
        terminalreporter.write_line(line)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "reliability.txt").write_text("\n".join(FIGURES) + "\n")


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``report(text)``: one line of the test's figures."""

    def add(text: str) -> None:
        line = f"{request.node.name}: {text}"
        FIGURES.append(line)
        print(line)

    return add


@pytest.fixture(scope="session")
def stack_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The database each stack starts from a copy of (``make_database``)."""
    database = tmp_path_factory.mktemp("template") / "db.sqlite3"
    make_database(database)
    return database


@pytest.fixture
def stack(tmp_path: Path, stack_database: Path) -> Iterator[Stack]:
    """A stack of its own for the test; stopped afterwards. Its logs stay in the test's
    temporary directory (printed when the test fails through ``logs_tail``)."""
    stack = Stack(tmp_path, stack_database)
    yield stack
    stack.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser
