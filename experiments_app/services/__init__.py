"""Writes, by job (HackSoft's styleguide): keyword-only ``<entity>_<verb>`` functions, each in
one transaction, notifying the channel layer only after it commits (``notify.run_changed``).

* ``teams``: teams, members, users made on the server;
* ``runs``: experiments and runs as users see them (launch, stop, resume, delete, notes);
* ``queueing``: sending training tasks, and sending again the lost ones;
* ``claims``: which worker trains a run (attempts, heartbeats, interrupted runs);
* ``events``: storing a run's events, publishing its frames;
* ``notify``: do the write, then notify.

Callers use this package's names (``services.run_claim``); the modules are how it is kept."""

from experiments_app.services.claims import (
    RunClaimLost,
    run_claim,
    run_discard_events,
    run_fail,
    run_heartbeat,
    run_mark_interrupted,
)
from experiments_app.services.events import run_frame_publish, run_record_events
from experiments_app.services.queueing import BROKER_DOWN, NO_BROKER, run_enqueue, run_requeue_lost
from experiments_app.services.runs import (
    experiment_create,
    experiment_delete,
    experiment_stop,
    experiment_update_notes,
    run_delete,
    run_out_dir,
    run_request_stop,
    run_resume,
    run_stop,
)
from experiments_app.services.teams import (
    team_create,
    team_member_add,
    team_member_remove,
    team_member_set_role,
    user_create_with_team,
)

__all__ = [
    "BROKER_DOWN", "NO_BROKER", "RunClaimLost", "experiment_create", "experiment_delete", "experiment_stop",
    "experiment_update_notes", "run_claim", "run_delete", "run_discard_events", "run_enqueue", "run_fail",
    "run_frame_publish", "run_heartbeat", "run_mark_interrupted", "run_out_dir", "run_record_events",
    "run_request_stop", "run_requeue_lost", "run_resume", "run_stop", "team_create", "team_member_add",
    "team_member_remove", "team_member_set_role", "user_create_with_team",
]
