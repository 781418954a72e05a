from django.apps import AppConfig


class TrialsConfig(AppConfig):
    name = "webapp.trials"
    label = "trials"
