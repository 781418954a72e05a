"""Writes for any ResumableRun, one module a job: `lifecycle` (pause, resume, cancel: what the
web process calls), `training` (a gpu worker's claim, heartbeat, stored epochs and endings) and
`reconcile` (beat's repairs)."""
