"""Several machines (issue 18), on one: Redis, a real S3-compatible server on the loopback (moto
in server mode), the control worker with beat, gunicorn, and two gpu workers that read as two
hosts (CELLSEARCH_WORKER_HOST, `-n gpuA@hostA`) with their own working directory and MEDIA_ROOT.
They share nothing but the broker, the test's database (SQLite here, PostgreSQL in CI's second
pass) and the store. A search with parallelism 2 spreads over both workers and finishes; its
checkpoints are objects in the bucket, in no MEDIA_ROOT, and download from the web process.

Also the store's settings (CELLSEARCH_STORAGE_URL) and the S3 backend's own checks, in-process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3
import pytest
from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation

from tests.conftest import ROOT, WorkerProcess, _free_port, wait_until
from tests.faults.stack import HOOKED_APP, RedisProcess, WebServer
from tests.webapp.conftest import TINY_PROXY, add_genotype, make_cell, make_trial  # noqa: F401
from webapp.storage_settings import LOCAL_BACKEND, S3_BACKEND, default_storage_from_url

BUCKET, PREFIX = "cellsearch-artifacts", "runs/ci"
#: Credentials for moto only; real ones come from the environment of each host, never the repo.
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}


# -- the store's settings ------------------------------------------------------------------------


def test_no_url_is_local_files():
    assert default_storage_from_url("") == {"BACKEND": LOCAL_BACKEND}


def test_an_s3_url_names_bucket_prefix_endpoint_and_region():
    entry = default_storage_from_url("s3://bucket/some/prefix/?endpoint_url=http://127.0.0.1:9000&region=eu-west-1")
    assert entry["BACKEND"] == S3_BACKEND
    assert entry["OPTIONS"] == {"bucket_name": "bucket", "location": "some/prefix", "file_overwrite": False,
                                "default_acl": None, "endpoint_url": "http://127.0.0.1:9000",
                                "region_name": "eu-west-1", "addressing_style": "path"}
    assert default_storage_from_url("s3://bucket")["OPTIONS"]["location"] == ""


@pytest.mark.parametrize("url", ["gs://bucket", "s3://", "s3://key:secret@bucket", "s3://bucket?endpoint=x",
                                 "s3://bucket?endpoint_url=ftp://host", "s3://bucket?region=",
                                 "s3://bucket?addressing_style=sideways", "/srv/media"])
def test_a_bad_url_is_refused_naming_the_variable(url):
    with pytest.raises(ImproperlyConfigured, match="^CELLSEARCH_STORAGE_URL="):
        default_storage_from_url(url)


def test_a_bad_url_stops_the_process_at_startup_with_one_line():
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "webapp.settings.test",
           "CELLSEARCH_STORAGE_URL": "gs://bucket", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: CELLSEARCH_STORAGE_URL='gs://bucket'"), last


# -- the S3 backend in-process (moto's mock) -----------------------------------------------------


@pytest.fixture
def mocked_s3(settings, monkeypatch, tmp_path):
    """default_storage on a mocked bucket (no server): `settings.STORAGES` points at it."""
    from moto import mock_aws

    for key, value in FAKE_AWS.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        settings.STORAGES = {**settings.STORAGES, "default": default_storage_from_url(f"s3://{BUCKET}/{PREFIX}")}
        yield boto3.client("s3", region_name="us-east-1")


def test_store_file_writes_an_object_under_the_prefix(mocked_s3, tmp_path):
    from webapp.storage import store_file

    local = tmp_path / "checkpoint.pt"
    local.write_bytes(b"weights" * 1000)
    assert store_file(name="checkpoints/x.pt", path=str(local)) == "checkpoints/x.pt"
    second = store_file(name="checkpoints/x.pt", path=str(local))  # taken: a free variant, never overwritten
    assert second != "checkpoints/x.pt" and second.startswith("checkpoints/x")
    body = mocked_s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/checkpoints/x.pt")["Body"].read()
    assert body == local.read_bytes()


def test_a_failed_upload_is_a_storage_write_error_with_the_reason(mocked_s3, tmp_path, settings):
    from django.core.files.storage import default_storage

    from webapp.storage import StorageWriteError, store_file

    settings.STORAGES = {**settings.STORAGES, "default": default_storage_from_url("s3://no-such-bucket")}
    local = tmp_path / "checkpoint.pt"
    local.write_bytes(b"weights")
    with pytest.raises(StorageWriteError, match=r"could not store checkpoints/x\.pt: .*NoSuchBucket"):
        store_file(name="checkpoints/x.pt", path=str(local))
    assert not default_storage.exists("checkpoints/x.pt")


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "checkpoints/../../x"])
def test_a_name_that_leaves_the_store_is_suspicious(mocked_s3, name):
    from django.core.files.storage import default_storage

    with pytest.raises(SuspiciousFileOperation):
        default_storage.exists(name)
    with pytest.raises(SuspiciousFileOperation):
        default_storage.open(name)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd"])
def test_a_checkpoint_named_outside_the_store_is_a_404_and_one_inside_downloads(
        mocked_s3, user, make_search, make_trial, name):  # noqa: F811 (fixtures of tests/webapp)
    from rest_framework.test import APIClient

    from webapp.trials.models import Trial

    search = make_search()
    mocked_s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/checkpoints/good.pt", Body=b"weights")
    mocked_s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/etc/passwd", Body=b"root:x:0:0")
    good, bad = make_trial(search, 0), make_trial(search, 1)
    Trial.objects.filter(pk=good.pk).update(checkpoint="checkpoints/good.pt")
    Trial.objects.filter(pk=bad.pk).update(checkpoint=name)
    api = APIClient()
    api.force_authenticate(user)
    refused = api.get(f"/api/trials/{bad.pk}/checkpoint")
    assert refused.status_code == 404 and b"root:" not in refused.content
    assert api.get(f"/api/trials/{bad.pk}/").json()["checkpoint_url"] is None
    answer = api.get(f"/api/trials/{good.pk}/checkpoint")
    assert answer.status_code == 200 and b"".join(answer.streaming_content) == b"weights"


# -- two hosts, one store ------------------------------------------------------------------------


class HostWorker(WorkerProcess):
    """A gpu worker as on a host of its own: its node name, its working directory (`env -C`)."""

    def __init__(self, env: dict[str, str], log_dir: Path, *, name: str, node: str, cwd: Path) -> None:
        super().__init__(env, log_dir, name=name, options=("-Q", "gpu"))
        self.node, self.cwd = node, cwd

    def command(self) -> list[str]:
        return ["env", "-C", str(self.cwd), sys.executable, "-m", "celery", "-A", self.app, "worker", "-Q", "gpu",
                "-c", "1", "--pool", "prefork", "--without-gossip", "--without-mingle", "--without-heartbeat",
                "-n", self.node, "-l", "info"]


@pytest.fixture
def s3_server():
    """moto's S3 server on a free loopback port with the bucket made; yields its endpoint."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_search_spreads_over_two_hosts_and_its_checkpoints_download_from_the_store(
        tmp_path, user, settings, s3_server):
    from rest_framework.authtoken.models import Token

    from tests.conftest import worker_env
    from webapp.searches.models import Search
    from webapp.trials.models import Trial

    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    store = {"CELLSEARCH_STORAGE_URL": f"s3://{BUCKET}/{PREFIX}?endpoint_url={s3_server}&region=us-east-1",
             **FAKE_AWS}
    folders = {name: tmp_path / name for name in ("hostA", "hostB", "web", "control")}
    for folder in folders.values():
        (folder / "media").mkdir(parents=True)
    settings.MEDIA_ROOT = str(folders["web"] / "media")
    redis = RedisProcess(_free_port())
    redis.start()

    def env(host: str, **extra: str) -> dict[str, str]:
        return worker_env(broker_url=redis.url, media=folders[host] / "media", CELLSEARCH_RECONCILE_SECONDS="1",
                          CELLSEARCH_HEARTBEAT_TIMEOUT="20", **store, **extra)

    gpus = [HostWorker(env(host, CELLSEARCH_WORKER_HOST=host), tmp_path, name=f"gpu{host[-1]}",
                       node=f"gpu{host[-1]}@{host}", cwd=folders[host]) for host in ("hostA", "hostB")]
    control = WorkerProcess(env("control"), tmp_path, name="control", app=HOOKED_APP,
                            options=("-Q", "control", "-B", "-s", str(folders["control"] / "celerybeat-schedule")))
    web = WebServer(env("web"), tmp_path)
    processes = (*gpus, control, web)
    try:
        for process in processes:
            process.launch()
        for process in processes:
            process.wait_ready(90)
        token = Token.objects.get_or_create(user=user)[0].key

        def call(method: str, path: str, body: bytes | None = None) -> urllib.request.Request:
            return urllib.request.Request(f"{web.url}{path}", method=method, data=body,
                                          headers={"Authorization": f"Token {token}",
                                                   "Content-Type": "application/json"})

        body = {"name": "two hosts", "space": "nasnet", "strategy": "evolution", "dataset": "digits", "budget": 4,
                "parallelism": 2, "seed": 5, "proxy": TINY_PROXY, "keep_checkpoints": True,
                "strategy_options": {"population_size": 20, "sample_size": 2}}
        with urllib.request.urlopen(call("POST", "/api/searches/", json.dumps(body).encode()), timeout=30) as answer:
            assert answer.status == 201
            search_id = json.loads(answer.read())["id"]

        def ended():
            search = Search.objects.get(pk=search_id)
            return search if search.status in Search.ENDED else None

        def logs() -> str:
            return "\n".join(f"--- {w.name} ---\n{w.log()[-3000:]}" for w in (*gpus, control))

        search = wait_until(ended, 150, "the search to end", logs=logs)
        assert search.status == Search.Status.FINISHED, logs()

        trials = list(Trial.objects.filter(search_id=search_id).order_by("index"))
        assert len(trials) == 4 and all(t.status == Trial.Status.FINISHED for t in trials)
        hosts = {t.worker.rsplit(":", 1)[0] for t in trials}
        assert hosts == {"hostA", "hostB"}, [t.worker for t in trials]

        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
        assert keys == {f"{PREFIX}/{t.checkpoint.name}" for t in trials}, keys
        for folder in folders.values():
            assert _files(folder / "media") == []
        for trial in trials:
            expected = s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{trial.checkpoint.name}")["Body"].read()
            with urllib.request.urlopen(call("GET", f"/api/trials/{trial.pk}/checkpoint"), timeout=30) as answer:
                assert answer.status == 200
                assert answer.read() == expected and len(expected) > 1000
    finally:
        for process in processes:
            process.stop()
        redis.kill()
