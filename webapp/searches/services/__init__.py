"""Writes for searches, in five modules: `lifecycle` (create, pause, resume, cancel), `steering`
(parallelism, budget, cancelling one trial, enqueueing a cell by hand, forking), `activity` (the
line each change leaves), `control` (the control step) and `reconcile` (repairs after dead
workers and lost messages); Celery messages go through webapp.dispatch.

The package re-exports what the web process calls, the lifecycle and the steering. The control
step loads torch, so only the workers' tasks import `control`, and `reconcile` with it.
"""

from webapp.searches.services.lifecycle import (
    search_cancel,
    search_create,
    search_launch_team,
    search_pause,
    search_resume,
    validate_search_config,
)
from webapp.searches.services.steering import search_enqueue, search_fork, search_steer, trial_cancel

__all__ = [
    "search_cancel",
    "search_create",
    "search_enqueue",
    "search_fork",
    "search_launch_team",
    "search_pause",
    "search_resume",
    "search_steer",
    "trial_cancel",
    "validate_search_config",
]
