"""``python manage.py mark_interrupted``: mark running runs whose worker stopped sending
heartbeats (for cron; workers also do it when they start)."""

from django.core.management.base import BaseCommand

from experiments_app.services import run_mark_interrupted


class Command(BaseCommand):
    help = "Mark runs with a stale heartbeat as interrupted."

    def handle(self, *args, **options) -> None:
        ids = run_mark_interrupted()
        self.stdout.write(f"marked interrupted: {ids}" if ids else "no stale runs")
