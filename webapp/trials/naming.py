"""How a worker is named on the pages: `host/worker`, the same across its restarts.

The host is CELLSEARCH_WORKER_HOST when set (two workers in containers, or on one test machine,
that must read as different hosts), else the machine's name; the worker is the Celery node's
own name, what `-n gpu0@%h` puts before the `@`. A process id would change at every restart.
Torch-free: the workers app and the trials services both name workers with it.
"""

from __future__ import annotations

import os
import socket

#: Celery's node name when `-n` is not given (`celery@%h`), and so outside a worker (tests).
DEFAULT_NODE = "celery"


def worker_host() -> str:
    return os.environ.get("CELLSEARCH_WORKER_HOST", "").strip() or socket.gethostname()


def worker_label(*, host: str, node: str) -> str:
    """`host/worker` for a Celery node name (`gpu0@machine` → `host/gpu0`)."""
    return f"{host}/{node.partition('@')[0] or DEFAULT_NODE}"


def current_worker_label() -> str:
    """This process's `host/worker`: the node of the Celery task it runs, if any."""
    from celery import current_task

    node = getattr(getattr(current_task, "request", None), "hostname", None) or DEFAULT_NODE
    return worker_label(host=worker_host(), node=node)
