"""The Content-Security-Policy (issue 17): every response carries one, its script-src allows no
inline script and no eval, and the pages need neither.

- Every page and API endpoint a signed-in user can GET (the GET rows of the permission matrix,
  which names every route of the URL conf), the login page, Swagger UI, the admin and a 404
  answer with the policy; each HTML page as rendered has no inline executable <script>, no on*=
  handler, no hx-on attribute and no javascript: URL.
- Every template has none of these either, so that a regression fails here even on a page the
  routes above do not render in that state (a partial, a branch of an {% if %}).

The browser tests (tests/e2e/conftest.py) fail on any violation that Chromium reports.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from tests.webapp.test_permission_matrix import MATRIX
from tests.webapp.test_permission_matrix import world as world  # noqa: F401  (the fixture, team A and its objects)

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "default-src": {"'self'"},
    "script-src": {"'self'"},
    "img-src": {"'self'", "data:"},
    "object-src": {"'none'"},
    "base-uri": {"'self'"},
    "frame-ancestors": {"'none'"},
    "form-action": {"'self'"},
}


def _policy(response) -> dict[str, set[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"{response.status_code} without a Content-Security-Policy header"
    policy = {}
    for part in header.split(";"):
        if part.strip():
            name, *values = part.split()
            policy[name] = set(values)
    return policy


def assert_strict(response, what: str) -> dict[str, set[str]]:
    policy = _policy(response)
    for name, values in EXPECTED.items():
        assert policy.get(name) == values, f"{what}: {name} is {policy.get(name)}, not {values}"
    for name in ("script-src", "script-src-elem", "script-src-attr", "default-src"):
        unsafe = policy.get(name, set()) & {"'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*"}
        assert not unsafe, f"{what}: {name} allows {unsafe}"
    assert policy.get("style-src", set()) <= {"'self'", "'unsafe-inline'"}, f"{what}: style-src {policy['style-src']}"
    return policy


# -- what counts as inline script ------------------------------------------------------------------

JSON_TYPES = {"application/json", "application/ld+json"}


def _inline_in_tag(tag: str, attrs: list[tuple[str, str | None]]) -> list[str]:
    """The inline script one start tag carries, as messages (none: it is clean)."""
    found = []
    names = {name.lower(): (value or "") for name, value in attrs}
    if tag == "script" and "src" not in names and names.get("type", "").strip().lower() not in JSON_TYPES:
        found.append("an inline <script>")
    for name, value in names.items():
        if re.fullmatch(r"on[a-z]+", name):
            found.append(f"an inline handler {name}=")
        elif re.match(r"(data-)?hx-on", name):
            found.append(f"an htmx handler {name}= (evaluated JavaScript)")
        elif re.sub(r"[\s\x00-\x1f]", "", value).lower().startswith("javascript:"):
            found.append(f"a javascript: URL in {name}=")
    return found


class _Scanner(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.found += [f"{problem} (<{tag} …>, line {self.getpos()[0]})" for problem in _inline_in_tag(tag, attrs)]


def inline_scripts(html: str) -> list[str]:
    scanner = _Scanner()
    scanner.feed(html)
    scanner.close()
    return scanner.found


def test_the_scanner_sees_what_csp_blocks():
    for html in ('<script>alert(1)</script>', '<script type="text/javascript">x()</script>',
                 '<script type="module">x()</script>', '<button onclick="x()">', '<form onsubmit="return x()">',
                 '<div hx-on:click="x()">', '<div hx-on::after-request="x()">', '<a href=" javascript:x()">',
                 '<a href="JavaScript:x()">'):
        assert inline_scripts(html), html
    for html in ('<script src="/static/js/charts.js"></script>', '<script src="/x.js" defer></script>',
                 '<script id="d" type="application/json">{"a": 1}</script>', '<a href="/javascript/">',
                 '<form data-confirm="Cancel? on=">', '<input data-select-on-click>'):
        assert not inline_scripts(html), html


# -- the templates ---------------------------------------------------------------------------------

#: A tag of a Django template: `{% … %}` and `{{ … }}` inside it are kept as text.
TEMPLATE_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9-]*)((?:[^>\"'{]|\"[^\"]*\"|'[^']*'|\{[^}]*\})*)>")
ATTRIBUTE = re.compile(r"([^\s=\"'{}%]+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?")


def _template_files() -> list[Path]:
    files = sorted((ROOT / "templates").rglob("*.html"))
    files += sorted(path for path in (ROOT / "webapp").rglob("templates/**/*.html"))
    return files


def test_templates_found():
    names = {path.relative_to(ROOT).as_posix() for path in _template_files()}
    assert {"templates/base.html", "templates/searches/detail.html", "templates/searches/_status.html"} <= names


@pytest.mark.parametrize("path", _template_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_template_has_no_inline_script(path):
    text = path.read_text()
    found = []
    for match in TEMPLATE_TAG.finditer(text):
        # drop template tags between attributes ({% if %} … {% endif %}) and keep their contents
        body = re.sub(r"\{%.*?%\}", " ", match.group(2))
        attrs = [(m.group(1), (m.group(2) or "").strip("\"'")) for m in ATTRIBUTE.finditer(body)]
        line = text.count("\n", 0, match.start()) + 1
        found += [f"line {line}: {problem}" for problem in _inline_in_tag(match.group(1).lower(), attrs)]
    if re.search(r"javascript\s*:", text, re.I):
        found.append("a javascript: URL")
    assert not found, f"{path.relative_to(ROOT)} has " + "; ".join(found)


# -- the responses ---------------------------------------------------------------------------------

PAGES = sorted((name, i) for name, cases in MATRIX.items() if not name.startswith("api:")
               for i, case in enumerate(cases) if case.method == "GET")
API = sorted((name, i) for name, cases in MATRIX.items() if name.startswith("api:")
             for i, case in enumerate(cases) if case.method == "GET")


def _body(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def test_every_page_route_is_checked():
    assert len(PAGES) >= 15 and ("searches:detail", 0) in PAGES and ("transfers:new", 0) in PAGES


@pytest.mark.parametrize(("name", "index"), PAGES, ids=[f"{n}-{i}" for n, i in PAGES])
def test_page_has_the_policy_and_no_inline_script(name, index, world):
    case = MATRIX[name][index]
    if case.setup:  # the state the route needs, as the permission matrix puts it (a one-shot search's supernet)
        case.setup(world)
    client = Client()
    client.force_login(world.owner)
    url = reverse(name, kwargs=case.kwargs(world))
    response = client.get(url, case.data(world) if case.data else {})
    assert response.status_code == 200, f"GET {url}: {response.status_code}"
    assert_strict(response, f"GET {url}")
    if response.get("Content-Type", "").startswith("text/html"):
        found = inline_scripts(_body(response))
        assert not found, f"GET {url} has " + "; ".join(found)


@pytest.mark.parametrize(("name", "index"), API, ids=[f"{n}-{i}" for n, i in API])
def test_api_response_has_the_policy(name, index, world):
    case = MATRIX[name][index]
    client = APIClient()
    client.force_authenticate(user=world.owner)
    url = reverse(name, kwargs=case.kwargs(world))
    response = client.get(url, case.data(world) if case.data else None)
    assert 200 <= response.status_code < 300, f"GET {url}: {response.status_code}"
    assert_strict(response, f"GET {url}")


def test_login_page_and_refusals_have_the_policy(user):
    client = Client()
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert_strict(response, "the login page")
    assert not inline_scripts(response.content.decode())
    assert_strict(client.get(reverse("searches:list")), "the redirect to the login page")
    assert_strict(APIClient().get(reverse("api:search-list")), "an API 401")
    client.force_login(user)
    assert_strict(client.get("/no/such/page/"), "a 404")


def test_swagger_ui_works_under_the_policy(user):
    """drf-spectacular's split view serves Swagger UI's init script from a URL, not inline."""
    client = Client()
    client.force_login(user)
    response = client.get(reverse("swagger-ui"))
    assert response.status_code == 200
    assert_strict(response, "Swagger UI")
    html = response.content.decode()
    assert not inline_scripts(html), inline_scripts(html)
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert any("swagger-ui-bundle.js" in src for src in scripts)
    init = [src for src in scripts if "script" in src and "swagger-ui" not in src]
    assert init, scripts
    script = client.get(init[0].replace("&amp;", "&"))
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle(" in script.content.decode()


def test_admin_has_the_policy(db):
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "root-password-1")
    client = Client()
    login = client.get(reverse("admin:login"))
    assert login.status_code == 200
    assert_strict(login, "the admin login")
    assert not inline_scripts(login.content.decode())
    client.force_login(admin)
    for url in (reverse("admin:index"), reverse("admin:auth_user_changelist"),
                reverse("admin:auth_user_change", args=[admin.pk])):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_strict(response, url)
        assert not inline_scripts(response.content.decode()), (url, inline_scripts(response.content.decode()))


def test_setting_is_the_only_policy():
    """One policy in one place: no report-only policy that could be mistaken for it."""
    assert "csp.middleware.CSPMiddleware" in settings.MIDDLEWARE
    assert not getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)
