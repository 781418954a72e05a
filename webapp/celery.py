"""The Celery app: reads CELERY_* settings and finds each app's tasks."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings.local")

app = Celery("cellsearch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
