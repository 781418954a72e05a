from django.apps import AppConfig


class TransfersConfig(AppConfig):
    name = "webapp.transfers"
    label = "transfers"
