"""bin/quickstart's demo search (`manage.py quickstart_demo`): the demo user, and a PPO search on
the digits that keeps as many trials in flight as the workers train at once."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from webapp.searches.models import Search


@pytest.mark.django_db
def test_the_demo_search_takes_the_workers_parallelism_once(settings, tmp_path, queued_steps, capsys):
    settings.VAR_DIR = tmp_path
    call_command("quickstart_demo", "--parallelism", "2")
    search = Search.objects.get()
    assert (search.strategy, search.dataset, search.parallelism, search.owner.get_username()) == (
        "ppo", "digits", 2, "demo")
    assert (tmp_path / "demo_password").read_text().strip() in capsys.readouterr().out
    call_command("quickstart_demo", "--parallelism", "2")  # again, while it runs: no second demo
    assert Search.objects.count() == 1 and "no new demo search launched" in capsys.readouterr().out
