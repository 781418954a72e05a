"""The control worker's Celery app in the fault drills: the project's app, plus one test hook.

When the file named by CELLSEARCH_DRILL_HOLD exists, the next control step that issues a trial
stops inside its transaction, after the trials and the strategy state are written and before
the commit, writes `<flag>.held`, and waits there for the drill to SIGKILL the worker.
"""

import os
import time
from pathlib import Path

from celery.signals import worker_process_init

from webapp.celery import app

__all__ = ["app"]


@worker_process_init.connect
def _install_hold_hook(**_kwargs) -> None:
    """In each pool process (Django is set up by then), wrap the control step's last write."""
    from webapp.searches.services import control

    settle = control._settle_search

    def settle_then_hold(search, now, changed):
        settle(search, now, changed)
        flag = Path(os.environ.get("CELLSEARCH_DRILL_HOLD", "/nonexistent"))
        if "trials_issued" in changed and flag.exists():
            flag.with_suffix(".held").write_text(f"{search.pk} {search.trials_issued}")
            while True:  # until SIGKILL
                time.sleep(1)

    control._settle_search = settle_then_hold
