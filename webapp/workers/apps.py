from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "webapp.workers"
    label = "workers"

    def ready(self) -> None:
        # Celery's worker signals: only a worker process sends them, so in the web process this
        # connects handlers that never run.
        from webapp.workers import signals

        signals.connect()
