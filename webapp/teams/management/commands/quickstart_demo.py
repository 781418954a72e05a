"""Make the demo user (a fresh password, printed) and launch a demo search on digits."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from webapp.searches.models import Search
from webapp.searches.services import search_create
from webapp.teams.services import team_ensure_for_user, user_create

DEMO_PROXY = {"epochs": 5, "cells": 1, "filters": 48, "batch_size": 64}


class Command(BaseCommand):
    help = "Create or reset the demo user and start a demo PPO search on digits if none is running."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--budget", type=int, default=30)

    def handle(self, *args, username: str, budget: int, **options):
        password = secrets.token_urlsafe(9)
        with transaction.atomic():
            user = get_user_model().objects.filter(username=username).first()
            if user is None:
                user = user_create(username=username, password=password)
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
                team_ensure_for_user(user=user)
            running = Search.objects.filter(owner=user, status__in=Search.ACTIVE).first()
            if running is None:
                running = search_create(
                    user=user, name="demo: PPO on digits", space="nasnet", strategy="ppo", dataset="digits",
                    budget=budget, parallelism=1, seed=0, proxy=DEMO_PROXY, strategy_options={"batch_size": 5},
                )
        self.stdout.write(f"quickstart: log in as {username!r} with password {password!r}")
        self.stdout.write(f"quickstart: demo search #{running.pk} ({running.status}) on digits")
