from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "webapp.teams"
    label = "teams"

    def ready(self) -> None:
        from webapp.teams import permissions  # noqa: F401  (registers the roles' rules)
