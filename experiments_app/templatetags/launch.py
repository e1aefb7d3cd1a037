"""The launch page's run-time estimate as text (static/experiments/launch.js writes the same
text as the page's fields change)."""

from __future__ import annotations

from typing import Any

from django import template

from experiments_app.selectors import RunSpeed

register = template.Library()


def about(seconds: float) -> str:
    """"about 45 s" (to 5 s under 100 s), "about 7 min" (to the minute under 90 minutes), else
    "about 2.5 h"."""
    if seconds < 100:
        return f"about {max(5, round(seconds / 5) * 5)} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


@register.simple_tag
def run_duration(speed: RunSpeed | None, total_timesteps: Any) -> str:
    """One run's estimated wall time at ``speed`` ("about 50 s"), or "" without a speed or a
    whole number of frames."""
    try:
        frames = int(total_timesteps)
    except (TypeError, ValueError):
        return ""
    return about(speed.duration_s(frames)) if speed is not None and frames > 0 else ""
