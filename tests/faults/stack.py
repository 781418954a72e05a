"""The whole stack as real processes, for the fault drills: a Redis server without persistence,
two gpu workers, the control worker with beat (the reconciler every second), and the web server
(gunicorn), all on the test's database. Any of them can be SIGKILLed and started again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ServerProcess, WorkerProcess, _free_port, _wait_for_port, worker_env

#: The control worker's Celery app: the project's, with the drills' hold hook (tests/faults/hooks.py).
HOOKED_APP = "tests.faults.hooks"


class RedisProcess:
    """redis-server on a fixed port with persistence off: a restart loses every queued message."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, 10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


class WebServer(ServerProcess):
    """gunicorn serving the web app (as docker/compose.yml runs it) on a free port."""

    what = "gunicorn"

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        super().__init__(env, log_dir, name="web")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "webapp.wsgi", "--bind", f"127.0.0.1:{self.port}",
                "--workers", "2", "--timeout", "30"]

    def ready(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.url}/accounts/login/", timeout=10).close()
        except OSError:  # refused, or not answering yet
            return False
        return True


@dataclass
class Stack:
    """Started by `start_stack`; `stop()` ends every process it started."""

    redis: RedisProcess
    gpu: list[WorkerProcess]
    control: WorkerProcess
    web: WebServer
    hold_flag: Path
    token: str = ""
    kills: dict[str, int] = field(default_factory=dict)

    def api(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """Call the web server's API as the drill's user (token auth); returns (status, JSON body)."""
        request = urllib.request.Request(
            f"{self.web.url}{path}", method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def kill(self, name: str, process) -> None:
        """SIGKILL one process of the stack, counting it."""
        process.kill()
        self.kills[name] = self.kills.get(name, 0) + 1

    def logs(self) -> str:
        parts = [f"--- {w.name} ---\n{w.log()[-3000:]}" for w in (*self.gpu, self.control)]
        return "\n".join(parts)

    def stop(self) -> None:
        for worker in (*self.gpu, self.control):
            worker.stop()
        self.web.stop()
        self.redis.kill()


def start_stack(*, tmp_path: Path, media: Path, user, extra_env: dict[str, str] | None = None) -> Stack:
    """Start every process of the stack for `user`'s drill (rows committed by the test are
    theirs to see); MEDIA_ROOT is `media` in all of them."""
    from rest_framework.authtoken.models import Token

    redis = RedisProcess(_free_port())
    redis.start()
    hold_flag = tmp_path / "hold-control-step"
    # A worker is presumed dead after 10 s without a beat: long enough for a loaded 2-core CI
    # machine running two drills at once, short enough to keep each drill within a minute or two.
    env = worker_env(broker_url=redis.url, media=media, CELLSEARCH_RECONCILE_SECONDS="1",
                     CELLSEARCH_HEARTBEAT_TIMEOUT="10", CELLSEARCH_DRILL_HOLD=str(hold_flag), **(extra_env or {}))
    gpu = [WorkerProcess(env, tmp_path, name=f"gpu{i}", options=("-Q", "gpu")) for i in range(2)]
    control = WorkerProcess(env, tmp_path, name="control", app=HOOKED_APP,
                            options=("-Q", "control", "-B", "-s", str(tmp_path / "celerybeat-schedule")))
    stack = Stack(redis=redis, gpu=gpu, control=control, web=WebServer(env, tmp_path), hold_flag=hold_flag,
                  token=Token.objects.get_or_create(user=user)[0].key)
    try:
        processes = (*gpu, control, stack.web)
        for process in processes:  # all at once: each takes seconds to import its code
            process.launch()
        for process in processes:
            process.wait_ready()
    except BaseException:
        stack.stop()
        raise
    return stack
