"""Make the demo user and launch a demo search on digits.

The password is made once and kept in the var folder (never in the repository), so running
the quickstart again neither changes it nor logs anyone out.
"""

import secrets
from pathlib import Path

from django.conf import settings
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
        parser.add_argument("--parallelism", type=int, default=1, help="trials at once: the trainings the workers run")

    def handle(self, *args, username: str, budget: int, parallelism: int, **options):
        password_file = Path(settings.VAR_DIR) / f"{username}_password"
        with transaction.atomic():
            user = get_user_model().objects.filter(username=username).first()
            if user is None or not password_file.exists() or not user.check_password(password_file.read_text().strip()):
                password = secrets.token_urlsafe(9)
                password_file.parent.mkdir(parents=True, exist_ok=True)
                password_file.write_text(password)
                password_file.chmod(0o600)
                if user is None:
                    user = user_create(username=username, password=password)
                else:
                    user.set_password(password)
                    user.save(update_fields=["password"])
            password = password_file.read_text().strip()
            team_ensure_for_user(user=user)
            active = Search.objects.filter(owner=user, status__in=Search.ACTIVE).order_by("pk").first()
            if active is None:
                demo = search_create(
                    user=user, name="demo: PPO on digits", space="nasnet", strategy="ppo", dataset="digits",
                    budget=budget, parallelism=max(1, min(parallelism, budget)), seed=0, proxy=DEMO_PROXY,
                    strategy_options={"batch_size": 5},
                )
                message = f"launched demo search #{demo.pk} on digits"
            else:
                message = f"{username}'s search #{active.pk} ({active}) is {active.status}; no new demo search launched"
        self.stdout.write(f"quickstart: log in as {username!r} with password {password!r} (kept in {password_file})")
        self.stdout.write(f"quickstart: {message}")
