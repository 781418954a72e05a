"""The control loop's cost between trials, measured with the no-op trainer (issue 20, items 1 and 5).

Every trial of a search goes: its worker records the end → `advance_search` on the control
queue → tell, ask, save the strategy state → the gpu queue → a worker claims the next one. With
`ProxyConfig(trainer="noop")` the training itself returns at once, so what is left is that
machinery. The bench starts a stack of its own — redis-server on a free port, a scratch
database (a temporary SQLite file; with DATABASE_URL set, that database, which must be a
scratch one), one control worker (`-Q control -c 1`) and one gpu worker with W processes
(`-Q gpu -c W`) — and runs one search per mode, `--trials` trials with parallelism W.

From the trials' rows it prints, per mode:

* the gap: on each worker process, from one trial's end (`finished_at`) to the start of the
  next it claims (`started_at`), median and p95 over every pair;
* the trial: from its claim to its end, i.e. the child process the runner starts and the writes
  around it (the no-op's own work is microseconds);
* trials per hour: the trials over the time from the first claim to the last end.

Modes, side by side in one run: asked on need (CELLSEARCH_TRIALS_AHEAD=0) against asked ahead
(1, the default), for each W in `--workers`. With `--trainer train` the trials train for real
(the demo's proxy at 1 epoch, `--epochs` for more), each with the threads its worker gives it
(the machine's cores over W): the whole stack's trials per hour.

Run from the repository root (redis-server on the PATH):
    python bench/control_loop.py [--trials 1000] [--workers 1] [--strategy random]
    python bench/control_loop.py --trials 400 --workers 1,2,4,8 --ahead 1     # scaling
    python bench/control_loop.py --trainer train --trials 8 --workers 1,2 --ahead 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

#: The search each mode runs: the demo's small proxy (quickstart_demo.DEMO_PROXY) with
#: `--trainer` and `--epochs`.
PROXY = {"cells": 1, "filters": 48, "batch_size": 64}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


class Stack:
    """Redis, and the workers of one mode; every process is stopped on `close`."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env, self.folder = env, folder
        self.processes: list[subprocess.Popen] = []

    def start_redis(self) -> str:
        port = free_port()
        self.processes.append(subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(lambda: _connects(port), 10, "redis-server")
        return f"redis://127.0.0.1:{port}/0"

    def start_worker(self, name: str, queue: str, concurrency: int, extra_env: dict[str, str]) -> subprocess.Popen:
        log = self.folder / f"{name}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", queue, "-c", str(concurrency),
             "--pool", "prefork", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h", "-l", "warning"],
            cwd=ROOT, env={**self.env, **extra_env}, stdout=log.open("w"), stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def stop_workers(self) -> None:
        for process in self.processes[1:]:
            process.terminate()
        for process in self.processes[1:]:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        del self.processes[1:]

    def close(self) -> None:
        self.stop_workers()
        for process in self.processes:
            process.kill()
            process.wait()


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def run_mode(stack: Stack, user, *, trials: int, workers: int, ahead: int, strategy: str, seed: int,
             proxy: dict) -> dict:
    """One search on a fresh control worker and gpu worker; its figures."""
    from django.db import transaction

    from webapp.searches.models import Search
    from webapp.searches.services import search_create

    # Threads per training from the worker's cores and concurrency, as a deployed worker's.
    extra = {"CELLSEARCH_TRIALS_AHEAD": str(ahead), "CELLSEARCH_THREADS_PER_CHILD": "0"}
    stack.start_worker("control", "control", 1, extra)
    stack.start_worker("gpu", "gpu", workers, extra)
    time.sleep(3)  # the workers connect; a search queued earlier would wait for them anyway
    with transaction.atomic():
        search = search_create(user=user, space="nasnet", strategy=strategy, dataset="digits", budget=trials,
                               parallelism=workers, seed=seed, proxy=proxy)

    def ended() -> bool:
        search.refresh_from_db()
        return search.status in Search.ENDED

    per_trial = 2.0 if proxy["trainer"] == "noop" else 300.0
    wait_for(ended, 60 + trials * per_trial, f"search {search.pk} to end", every=0.5)
    stack.stop_workers()
    if search.status != Search.Status.FINISHED:
        raise SystemExit(f"search {search.pk} {search.status}: {search.error}")
    return figures(search)


def figures(search) -> dict:
    rows = list(search.trials.filter(reused_from__isnull=True).exclude(started_at=None)
                .order_by("started_at").values_list("worker", "started_at", "finished_at"))
    by_worker: dict[str, list[tuple]] = {}
    for worker, started, finished in rows:
        by_worker.setdefault(worker, []).append((started, finished))
    gaps = [(later[0] - earlier[1]).total_seconds() * 1000
            for runs in by_worker.values() for earlier, later in zip(runs, runs[1:])]
    durations = [(finished - started).total_seconds() * 1000 for _, started, finished in rows]
    span = (max(r[2] for r in rows) - min(r[1] for r in rows)).total_seconds()
    return {"trials": len(rows), "processes": len(by_worker), "gap_median": statistics.median(gaps),
            "gap_p95": percentile(gaps, 95), "trial_median": statistics.median(durations),
            "per_hour": len(rows) * 3600 / span}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def configure(folder: Path, broker_url: str) -> dict[str, str]:
    """Settings for this process and the workers: the test settings (no secrets) on the bench's
    own database and broker; returns the workers' environment."""
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'bench.sqlite3'}"
    os.environ.update({"DJANGO_SETTINGS_MODULE": "webapp.settings.test", "CELLSEARCH_TEST_BROKER_URL": broker_url,
                       "CELLSEARCH_MEDIA_ROOT": str(folder / "media"), "DJANGO_LOG_LEVEL": "WARNING",
                       "OMP_NUM_THREADS": "1",
                       "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return dict(os.environ)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000, help="trials of each mode's search")
    parser.add_argument("--workers", default="1", help="gpu worker processes, comma-separated: one mode each")
    parser.add_argument("--ahead", default="0,1", help="CELLSEARCH_TRIALS_AHEAD values, comma-separated")
    parser.add_argument("--strategy", default="random", help="the searches' strategy (random, ppo, ...)")
    parser.add_argument("--trainer", default="noop", help="the proxy's trainer: noop (default) or train")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per trial with --trainer train")
    args = parser.parse_args()
    proxy = {**PROXY, "trainer": args.trainer, "epochs": args.epochs}
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not on the PATH")
    folder = Path(tempfile.mkdtemp(prefix="cellsearch-control-loop-"))
    stack = Stack({}, folder)
    try:
        stack.env = configure(folder, stack.start_redis())
        from webapp.teams.services import user_create

        # A team of its own: no result of an earlier run in a scratch database is reused.
        user = user_create(username=f"bench-{uuid.uuid4().hex[:6]}", password=uuid.uuid4().hex)
        from django.db import connection

        print(f"{os.cpu_count()} CPUs, {connection.vendor} database, {args.trials} trials per search of the "
              f"{args.trainer} trainer ({proxy}), strategy {args.strategy}, parallelism = gpu worker processes")
        print(f"{'processes':>9} {'ahead':>5} | {'gap median':>10} {'gap p95':>8} | {'trial median':>12} | "
              f"{'trials/h':>9}")
        results = {}
        seed = 0
        for workers in [int(w) for w in args.workers.split(",")]:
            for ahead in [int(a) for a in args.ahead.split(",")]:
                seed += 1
                result = run_mode(stack, user, trials=args.trials, workers=workers, ahead=ahead,
                                  strategy=args.strategy, seed=seed, proxy=proxy)
                results[workers, ahead] = result
                print(f"{workers:>9} {ahead:>5} | {result['gap_median']:>7.1f} ms {result['gap_p95']:>5.0f} ms | "
                      f"{result['trial_median']:>9.0f} ms | {result['per_hour']:>9,.0f}", flush=True)
        base_workers, base_ahead = next(iter(results))
        base = results[base_workers, base_ahead]["per_hour"]
        for (workers, ahead), result in results.items():
            print(f"{workers} process(es), ahead {ahead}: {result['per_hour'] / base:5.2f}x the trials/h of "
                  f"{base_workers} process(es), ahead {base_ahead}")
    finally:
        stack.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
