"""Abuse (issue 17): login lockout, API throttles, downloads that cannot leave MEDIA_ROOT,
security headers, and no pickle-loading torch.load."""

import ast
import datetime
import subprocess
from pathlib import Path

import pytest
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parents[2]
LOGIN = "/accounts/login/"
ALICE_PASSWORD = "alice-password-1"  # noqa: S105 (tests/webapp/conftest.py's `user`)


# -- 1. login lockout (django-axes) ----------------------------------------------------------------


def _login(client, username, password, ip="127.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_wrong_passwords_lock_the_username_and_ip_out_until_the_cool_off(client, user, other_user, settings):
    from axes.models import AccessAttempt

    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = _login(client, "alice", "wrong")
        assert response.status_code == 200  # the form again, with its error
    response = _login(client, "alice", "wrong")
    assert response.status_code == 429
    assert b"too many login attempts" in response.content.lower()

    # The right password is refused now, and no session is made.
    response = _login(client, "alice", ALICE_PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session

    # Another user from the same IP, and alice from another IP, are not locked out.
    assert _login(client, "bob", "bob-password-1").status_code == 302
    client.logout()
    assert _login(client, "alice", ALICE_PASSWORD, ip="10.0.0.2").status_code == 302
    client.logout()

    # Once the cool-off has passed, alice logs in again from where she was locked out.
    AccessAttempt.objects.update(attempt_time=datetime.datetime.now(datetime.UTC)
                                 - datetime.timedelta(hours=settings.AXES_COOLOFF_TIME + 1))
    response = _login(client, "alice", ALICE_PASSWORD)
    assert response.status_code == 302
    assert int(client.session["_auth_user_id"]) == user.pk


def test_a_successful_login_forgets_the_failures(client, user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "alice", "wrong")
    assert _login(client, "alice", ALICE_PASSWORD).status_code == 302
    client.logout()
    assert _login(client, "alice", "wrong").status_code == 200  # counting from zero again


# -- 2. API throttles ----------------------------------------------------------------------------


@pytest.fixture
def low_user_rate(monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import UserRateThrottle

    monkeypatch.setattr(UserRateThrottle, "rate", "3/min", raising=False)  # over THROTTLE_RATES["user"]
    cache.clear()
    yield 3
    cache.clear()


def test_the_request_over_the_user_rate_is_a_429_with_retry_after(user, other_user, low_user_rate):
    api = APIClient()
    api.force_authenticate(user)
    for _ in range(low_user_rate):
        assert api.get("/api/searches/").status_code == 200
    response = api.get("/api/searches/")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "throttled" in response.json()["detail"].lower()

    other = APIClient()  # per user: bob still has his requests
    other.force_authenticate(other_user)
    assert other.get("/api/searches/").status_code == 200


def test_the_throttles_and_their_rates_come_from_the_settings():
    from django.conf import settings

    rest = settings.REST_FRAMEWORK
    assert rest["DEFAULT_THROTTLE_CLASSES"] == ["rest_framework.throttling.UserRateThrottle",
                                                "rest_framework.throttling.AnonRateThrottle"]
    assert set(rest["DEFAULT_THROTTLE_RATES"]) == {"user", "anon"}


# -- 3. downloads stay inside MEDIA_ROOT -----------------------------------------------------------

OUTSIDE = ["../../etc/passwd", "/etc/passwd"]


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


def _refused(response):
    assert response.status_code == 404
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"root:" not in body


@pytest.mark.parametrize("name", OUTSIDE)
def test_a_trial_checkpoint_outside_media_root_is_a_404(client, user, make_search, make_trial, media, name):
    from webapp.trials.models import Trial

    trial = make_trial(make_search(), 0)
    Trial.objects.filter(pk=trial.pk).update(checkpoint=name)
    api = APIClient()
    api.force_authenticate(user)
    _refused(api.get(f"/api/trials/{trial.pk}/checkpoint"))
    client.force_login(user)  # the pages that offer the file do not offer it, nor fail
    page = client.get(f"/trials/{trial.pk}/")
    assert page.status_code == 200 and f"/api/trials/{trial.pk}/checkpoint" not in page.content.decode()
    assert api.get(f"/api/trials/{trial.pk}/").json()["checkpoint_url"] is None


@pytest.mark.parametrize("name", OUTSIDE)
def test_a_transfer_file_outside_media_root_is_a_404(client, user, team, transfer_source, media, name):
    from webapp.transfers.models import Transfer

    trial = transfer_source
    transfer = Transfer.objects.create(team=team, owner=user, name="t", cell=trial.cell, genotype=trial.genotype,
                                       cell_hash=trial.cell_hash, source_trial=trial, source_search=trial.search,
                                       status=Transfer.Status.FINISHED, config={"epochs": 1})
    Transfer.objects.filter(pk=transfer.pk).update(best_checkpoint=name, onnx_file=name)
    api = APIClient()
    api.force_authenticate(user)
    client.force_login(user)
    for kind in ("best", "onnx"):
        _refused(api.get(f"/api/transfers/{transfer.pk}/files/{kind}"))
        _refused(client.get(f"/transfers/{transfer.pk}/files/{kind}"))
    page = client.get(f"/transfers/{transfer.pk}/")  # the page does not offer them, nor fail
    assert page.status_code == 200 and f"/transfers/{transfer.pk}/files/best" not in page.content.decode()


# -- 4. security headers, torch.load -------------------------------------------------------------

HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY",
           "Cross-Origin-Opener-Policy": "same-origin"}


def _has_security_headers(response):
    for name, value in HEADERS.items():
        assert response.get(name) == value, (name, response.get(name))


def test_security_headers_on_a_page_an_api_response_and_the_login_page(client, user):
    _has_security_headers(client.get(LOGIN))
    client.force_login(user)
    page = client.get("/")
    assert page.status_code == 200
    _has_security_headers(page)
    api = APIClient()
    api.force_authenticate(user)
    response = api.get("/api/searches/")
    assert response.status_code == 200
    _has_security_headers(response)
    _has_security_headers(APIClient().get("/api/searches/"))  # a 401 too


def _torch_load_calls():
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in files:
        path = ROOT / name
        if not path.exists():
            continue
        source = path.read_text()
        if "load(" not in source:
            continue
        for node in ast.walk(ast.parse(source, filename=name)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
                yield f"{name}:{node.lineno}", node


def test_every_torch_load_passes_weights_only_true():
    calls = list(_torch_load_calls())
    assert calls, "found no call of torch.load: is the scan still looking at the repo?"
    unsafe = [where for where, node in calls
              if not any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                         for k in node.keywords)]
    assert not unsafe, f"torch.load without weights_only=True (a pickle can run code): {unsafe}"
