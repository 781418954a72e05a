"""Writes for searches, in six modules: `lifecycle` (create, pause, resume, cancel), `steering`
(parallelism, budget, cancelling one trial, enqueueing a cell by hand, forking), `seeds` (matched
seeds of several strategies for Figure 6), `activity` (the line each change leaves), `control`
(the control step) and `reconcile` (repairs after dead workers and lost messages); Celery
messages go through webapp.dispatch.

The package re-exports what the web process calls, the lifecycle, the steering and the seeds. The control
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
from webapp.searches.services.seeds import SeedRuns, search_seeds_create
from webapp.searches.services.steering import search_enqueue, search_fork, search_steer, trial_cancel

__all__ = [
    "SeedRuns",
    "search_cancel",
    "search_create",
    "search_enqueue",
    "search_fork",
    "search_launch_team",
    "search_pause",
    "search_resume",
    "search_seeds_create",
    "search_steer",
    "trial_cancel",
    "validate_search_config",
]
