"""For every test: one browser (``tests.browser.find_chromium``) for the browser tests and for
kaleido's PNG figures, and a summary line saying how many browser tests ran."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.browser import CHROMIUM, ENV, HOW_TO_ENABLE


def pytest_configure(config: pytest.Config) -> None:
    # kaleido looks for its browser on its own; BROWSER_PATH (its override) makes it use the one
    # the browser tests drive, and find none where BIDIR_CHROMIUM names a missing file.
    if chosen := os.environ.get(ENV) or CHROMIUM:
        os.environ["BROWSER_PATH"] = str(chosen)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """``browser tests: N ran[, M skipped (why)]``, where any browser test was collected."""
    outcomes: dict[str, str] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if "browser" in getattr(report, "keywords", {}):
                # one report per phase (a pass, then a teardown error): the test counts once
                outcomes[report.nodeid] = outcomes.get(report.nodeid, outcome)
    if not outcomes:
        return
    skipped = sum(outcome == "skipped" for outcome in outcomes.values())
    line = f"browser tests: {len(outcomes) - skipped} ran"
    if skipped:
        line += f", {skipped} skipped" + (f" ({HOW_TO_ENABLE})" if CHROMIUM is None else "")
    terminalreporter.write_line(line)
