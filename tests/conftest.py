import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

# -- a real Redis and a real Celery worker, for the integration and end-to-end tests -------------
# Everything below imports Django and Celery lazily: searchcore's tests never touch them.

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server did not answer on port {port} within {timeout} s")


@pytest.fixture(scope="session")
def redis_server():
    """A throwaway Redis (no persistence) for this test session; yields its URL."""
    port = _free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, 10)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _use_broker(url: str) -> None:
    """Point this process's Celery app at `url`, dropping the connection pools made for the
    previous one (Celery and kombu make them lazily, on the first message)."""
    import kombu.pools

    from webapp.celery import app

    kombu.pools.reset()
    app._pool = None
    app.amqp._producer_pool = None
    app.conf.broker_url = url


@pytest.fixture
def celery_broker(redis_server):
    """This process publishes to the test Redis for the test's duration (then to memory again).
    Each test starts with empty queues."""
    from webapp.celery import app

    previous = app.conf.broker_url
    _use_broker(redis_server)
    with app.connection_for_write() as connection:
        connection.default_channel.client.flushdb()
    yield redis_server
    _use_broker(previous)


def _database_url(settings_dict: dict) -> str:
    """A DATABASE_URL naming the database this test process uses (the test database)."""
    engine, name = settings_dict["ENGINE"], settings_dict["NAME"]
    if engine == "django.db.backends.sqlite3":
        if not name or name == ":memory:" or str(name).startswith("file:"):
            pytest.fail("a worker process cannot share an in-memory SQLite database: set CELLSEARCH_TEST_DB")
        return f"sqlite:///{name}"
    if engine == "django.db.backends.postgresql":
        user, password = settings_dict.get("USER") or "", settings_dict.get("PASSWORD") or ""
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "localhost"
        port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
        return f"postgres://{auth}{host}{port}/{name}"
    pytest.fail(f"no worker database URL for {engine}")


def wait_until(condition, timeout: float, what: str, *, logs=lambda: "", every: float = 0.2):
    """Poll `condition()` until it returns something truthy, and return that; on timeout fail
    with `what` and the end of `logs()` (the processes' logs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{logs()[-8000:]}")


class ServerProcess:
    """A process of the stack that a test starts, SIGKILLs and starts again: the command runs
    from the repository root in a session of its own (so a SIGKILL of its group takes its
    children too), each start writing `<name>-<n>.log` in `log_dir`."""

    what = "the process"

    def __init__(self, env: dict[str, str], log_dir: Path, *, name: str) -> None:
        self.env, self.log_dir, self.name = env, log_dir, name
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.starts = 0

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 60) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it to be ready (see `wait_ready`)."""
        self.starts += 1
        self.log_path = self.log_dir / f"{self.name}-{self.starts}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.what} exited with {self.proc.returncode}:\n{self.log()}")
            if self.ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.what} was not ready within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the process and its children at once, as a machine dying would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # a warm shutdown of the whole group
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None


class WorkerProcess(ServerProcess):
    """A `celery worker` subprocess (by default on the control and gpu queues, one process),
    sharing the test database. `options` are more `celery worker` options (-Q, -B, ...)."""

    what = "the celery worker"

    def __init__(self, env: dict[str, str], log_dir: Path, *, name: str = "worker", app: str = "webapp",
                 options: tuple[str, ...] = ("-Q", "control,gpu")) -> None:
        super().__init__(env, log_dir, name=name)
        self.app, self.options = app, options

    def command(self) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", self.app, "worker", *self.options, "-c", "1",
                "--pool", "prefork", "--without-gossip", "--without-mingle", "--without-heartbeat",
                "-n", f"{self.name}-{uuid.uuid4().hex[:8]}@%h", "-l", "info"]

    def ready(self) -> bool:
        return " ready." in self.log()


def worker_env(*, broker_url: str, media: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker or server process started by a test: the test settings, this
    test's database and broker, `media` as MEDIA_ROOT, and any `extra` variables."""
    from django.db import connection

    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings.test",
        "DATABASE_URL": _database_url(connection.settings_dict),
        "CELLSEARCH_TEST_BROKER_URL": broker_url,
        "CELLSEARCH_MEDIA_ROOT": str(media),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **extra,
    }


@pytest.fixture
def celery_worker_process(celery_broker, transactional_db, tmp_path, settings):
    """A started worker (see WorkerProcess) for a `django_db(transaction=True)` test; stopped
    after it. Rows the test commits are visible to the worker and the other way round.
    MEDIA_ROOT points at a temporary folder in both processes."""
    media = tmp_path / "media"
    media.mkdir()
    settings.MEDIA_ROOT = str(media)
    worker = WorkerProcess(worker_env(broker_url=celery_broker, media=media), tmp_path)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
