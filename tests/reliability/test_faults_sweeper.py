"""The stale-run sweeper every web process and worker runs (end to end, with no worker alive:
test_faults_worker.py): what one sweep marks, and that each process starts one thread at most."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from experiments_app import sweeper
from experiments_app.models import Run

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]


def test_a_sweep_interrupts_the_runs_whose_heartbeat_went_stale_and_only_those(experiment, settings):
    stale, fresh = experiment.runs.order_by("seed")
    now = timezone.now()
    Run.objects.filter(pk=stale.pk).update(
        status=Run.Status.RUNNING, heartbeat_at=now - timedelta(seconds=settings.STALE_AFTER_S + 1), worker_host="gone@vm")
    Run.objects.filter(pk=fresh.pk).update(status=Run.Status.RUNNING, heartbeat_at=now, worker_host="alive@vm")
    assert sweeper.sweep_stale_runs() == [stale.pk]
    assert Run.objects.get(pk=stale.pk).status == Run.Status.INTERRUPTED
    assert Run.objects.get(pk=fresh.pk).status == Run.Status.RUNNING
    assert sweeper.sweep_stale_runs() == []


def test_a_process_starts_one_sweeper_thread_and_none_when_sweeping_is_off(settings, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(sweeper, "_sweep_forever", lambda interval_s: release.wait(30))
    monkeypatch.setattr(sweeper, "_thread", None)
    settings.STALE_SWEEP_S = 0
    assert not sweeper.start_stale_run_sweeper()
    settings.STALE_SWEEP_S = 5
    try:
        assert sweeper.start_stale_run_sweeper()
        assert not sweeper.start_stale_run_sweeper(), "already running"
    finally:
        release.set()
    sweeper._thread.join(timeout=5)
    assert sweeper.start_stale_run_sweeper(), "a thread that ended is replaced"
