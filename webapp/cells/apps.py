from django.apps import AppConfig


class CellsConfig(AppConfig):
    name = "webapp.cells"
    label = "cells"
