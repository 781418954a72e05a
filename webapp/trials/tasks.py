"""Celery tasks of the gpu queue: one trial's training per message."""

from celery import shared_task

from webapp.trials.services import trial_run


@shared_task(name="trials.train_trial")
def train_trial(trial_id: int) -> str:
    """Claim and train one trial (a duplicate message finds nothing to claim and returns)."""
    trial = trial_run(trial_id=trial_id)
    return "skipped" if trial is None else trial.status
