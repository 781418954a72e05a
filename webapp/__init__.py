"""CellSearch's web app: Django + DRF pages and API, Celery workers driving searchcore."""

from webapp.celery import app as celery_app

__all__ = ["celery_app"]
