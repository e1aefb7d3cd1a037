"""The Chrome/Chromium kaleido would launch for the study's PNG figures, found as kaleido finds
one. Light (choreographer only) so that a test session can ask too (``tests/browser.py``)."""

from __future__ import annotations

from pathlib import Path

from choreographer.browsers import Chromium


def chrome_path() -> str | None:
    """choreographer's lookup, as kaleido runs it: ``$BROWSER_PATH``, a Chrome/Chromium/Edge/Brave
    on PATH or in its usual place, a copy ``plotly_get_chrome`` downloaded; None where none is a file."""
    # kaleido's browser never enables the sandbox, so choreographer never skips its local copy
    path = Chromium.find_browser(skip_local=False)
    return path if path and Path(path).is_file() else None
