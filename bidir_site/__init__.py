"""bidir's Django project. Importing it loads the Celery app, so that ``@shared_task``
tasks (``workers.tasks``) bind to it."""

from bidir_site.celery import app as celery_app

__all__ = ("celery_app",)
