"""The API fuzzed from its own OpenAPI schema (issue 17, "bad input"), with Schemathesis.

The schema the app serves at /api/schema/ is loaded in-process (`schemathesis.openapi.from_wsgi`
on Django's WSGI handler) and every operation in it gets valid and invalid requests, as team A's
viewer, member and owner (token auth). The ids in the paths are team A's real objects (a search
with trials, its cell, a transfer, a reviewed cell, the team and its members), so the requests
reach the views rather than stopping at 404. Each case runs in a savepoint that is rolled back,
so every case sees the same team; nothing leaves the test database and queued tasks go to the
test settings' in-memory broker (or nowhere: `send_task` is stubbed).

What must hold for every response:

- no 5xx (Schemathesis' `not_a_server_error`);
- a 4xx with a JSON body names what went wrong: `detail` for 401/403/404/405/406/415/429 style
  refusals; for a 400, keys that are fields of the request (body, query or path parameters) or
  `non_field_errors`/`detail`, each with non-empty reasons (`field_named_in_4xx` below);
- a documented status' body matches the schema (`response_schema_conformance`).

Every operation of the schema must have run at least one case per role, so the test cannot pass
by running nothing. Bounded: a few examples per operation, derandomized (the same cases every run).
"""

from __future__ import annotations

import json
import os
import re
import traceback
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import schemathesis
from django.core.files.base import ContentFile
from django.core.handlers.wsgi import WSGIHandler
from django.db import transaction
from django.urls import Resolver404, resolve
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.webapp.conftest import join_team
from webapp import api_urls
from webapp.cells.services import cell_result_update
from webapp.reviews import services as review_services
from webapp.reviews.models import ReviewStatus
from webapp.reviews.selectors import ReviewSubject
from webapp.searches.models import Search
from webapp.teams.models import Team
from webapp.transfers.models import Transfer

pytestmark = pytest.mark.django_db

#: Examples per operation, per generation mode (valid and invalid requests), per role; more for a
#: deeper run (CELLSEARCH_SCHEMATHESIS_EXAMPLES=50: a few minutes).
MAX_EXAMPLES = int(os.environ.get("CELLSEARCH_SCHEMATHESIS_EXAMPLES", "4"))
TAG = "fuzz-tag"
#: Ids no row can have: past a 64-bit integer (SQLite and PostgreSQL refuse them in a query).
BIG = [2**63, 10**30]
#: Statuses whose DRF body is `{"detail": ...}`.
DETAIL_STATUSES = {401, 403, 404, 405, 406, 409, 413, 415, 429}


# -- team A, with something in it -------------------------------------------------------------------


@pytest.fixture
def world(user, make_trial, make_cell, concat_genotype, settings, tmp_path, no_broker) -> dict[str, Any]:
    from rest_framework.authtoken.models import Token


    settings.MEDIA_ROOT = str(tmp_path / "media")
    team = Team.objects.get(name="team-a")
    viewer, member, target = (join_team(team, "vera", "viewer"), join_team(team, "max", "member"),
                              join_team(team, "tara", "member"))
    search = Search.objects.create(team=team, owner=user, name="fuzzed", budget=10, proxy={"epochs": 1},
                                   proxy_key="p", strategy="random", status=Search.Status.RUNNING)
    other_search = Search.objects.create(team=team, owner=user, name="second", budget=10, proxy={"epochs": 1},
                                         proxy_key="p", strategy="random", status=Search.Status.FINISHED)
    trial = make_trial(search, 0, reward=0.8)
    make_trial(search, 1, reward=0.6)
    make_trial(search, 2, status="running")
    trial.checkpoint.save("checkpoint.pt", ContentFile(b"weights"), save=True)
    cell_result_update(trial=trial)
    second = make_trial(other_search, 0, cell=make_cell(concat_genotype), reward=0.7)
    cell_result_update(trial=second)
    transfer = Transfer.objects.create(team=team, owner=user, name="fuzzed-transfer", cell=trial.cell,
                                       genotype=trial.genotype, cell_hash=trial.cell_hash, source_trial=trial,
                                       source_search=search, status=Transfer.Status.RUNNING, config={"epochs": 2})
    transfer.best_checkpoint.save("best.pt", ContentFile(b"weights"), save=True)
    subject = ReviewSubject(team=team, cell=trial.cell, search=search)
    review_services.tag_add(user=user, subject=subject, name=TAG)
    review_services.comment_create(user=user, subject=subject, body="a **fine** cell")
    review_services.rating_set(user=user, subject=subject, stars=4)
    review_services.review_status_set(user=user, subject=subject, status=ReviewStatus.Status.SHORTLISTED)
    people = {"owner": user, "member": member, "viewer": viewer}
    return {
        "tokens": {role: Token.objects.create(user=person).key for role, person in people.items()},
        # real values for the path parameters: team A's objects (ids) and the tag's name
        "path": {
            "search_id": [search.pk, other_search.pk],
            "trial_id": [trial.pk, second.pk],
            "cell_id": [trial.cell.pk, second.cell.pk],
            "transfer_id": [transfer.pk],
            "team_id": [team.pk],
            "user_id": [target.pk, member.pk, viewer.pk, user.pk],
            "name": [TAG],
            "kind": ["genotype", "best", "card.md"],
        },
        # and for the query parameters that name a team-A object
        "query": {"team": team.pk, "search": search.pk, "cell": trial.cell.pk,
                  "searches": f"{search.pk},{other_search.pk}", "cells": f"{trial.cell.pk},{second.cell.pk}"},
        "big_query": {**{name: BIG[0] for name in ("team", "search", "cell", "limit", "offset", "top", "after")},
                      "searches": f"{search.pk},{BIG[1]}", "cursor": str(BIG[1])},
    }


@pytest.fixture
def wsgi_app():
    """Django's WSGI handler, without closing the database connection between requests (the
    test's transaction lives on it); the exceptions behind any 500 are kept, for the report."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    errors: list[str] = []

    def keep(sender, request=None, **kwargs):
        errors.append(traceback.format_exc())

    signals.got_request_exception.connect(keep, weak=False)
    handler = WSGIHandler()
    handler.server_errors = errors  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        signals.got_request_exception.disconnect(keep)
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


# -- the check that a refusal says what was wrong ----------------------------------------------------


def _sent_names(request) -> set[str]:
    """The top-level names in the body as sent (JSON, form or multipart)."""
    body = request.body
    if not body:
        return set()
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    content_type = request.headers.get("Content-Type", "")
    if "json" in content_type:
        try:
            data = json.loads(body)
        except ValueError:
            return set()
        return set(data) if isinstance(data, dict) else set()
    if "x-www-form-urlencoded" in content_type:
        return {name for name, _ in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)}
    if "multipart/form-data" in content_type:
        return {name.decode("utf-8", "replace") for name in re.findall(rb'; name="([^"]*)"', body)}
    return set()


def _request_fields(case, response) -> set[str]:
    """The names a 400 may use: the operation's parameters, the names the body sent, and the
    properties (any depth) of the bodies sent to and answered from the operations on its path:
    the fields of the object it acts on (a refused cancel names `status`, a refused removal of
    the last owner names `role`)."""
    operation = case.operation
    fields = {parameter.name for parameter in operation.iter_parameters()} | _sent_names(response.request)
    if isinstance(case.body, dict):
        fields |= set(case.body)
    document = operation.schema.raw_schema
    contents: list[dict] = []
    for method in document["paths"][operation.path].values():
        if not isinstance(method, dict):
            continue
        contents += list(method.get("requestBody", {}).get("content", {}).values())
        for status, response in method.get("responses", {}).items():
            if str(status).startswith("2"):
                contents += list(response.get("content", {}).values())
    for content in contents:
        fields |= _properties(document, content.get("schema", {}), set())
    # a multipart or form body's field names reach the server stripped of surrounding whitespace
    return fields | {name.strip() for name in fields}


def _properties(document: dict, node: Any, seen: set[str]) -> set[str]:
    """Property names in a JSON schema of the OpenAPI `document`, through $refs and nesting."""
    if isinstance(node, list):
        return set().union(*(_properties(document, child, seen) for child in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    names: set[str] = set()
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/") and ref not in seen:
        seen.add(ref)
        target: Any = document
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        names |= _properties(document, target, seen)
    properties = node.get("properties")
    if isinstance(properties, dict):
        names |= set(properties)
    for key, child in node.items():
        if key not in ("$ref", "enum", "example", "default"):
            names |= _properties(document, child, seen)
    return names


def _reasons_ok(value: Any) -> bool:
    """A list of non-empty strings, or (a nested object's errors) a dict of such."""
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list):
        return bool(value) and all(_reasons_ok(item) for item in value)
    if isinstance(value, dict):
        return bool(value) and all(_reasons_ok(item) for item in value.values())
    return False


def _routed(url: str) -> bool:
    try:
        resolve(unquote(urlsplit(url).path))
    except Resolver404:
        return False
    return True


def field_named_in_4xx(ctx, response, case) -> bool | None:
    """A 4xx JSON body says what was refused: `detail`, or for a 400 the request's fields."""
    if not 400 <= response.status_code < 500:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    if "json" not in content_type:
        if response.status_code == 404 and not _routed(response.request.url):
            return None  # no route matches (an id that is no number): Django's own 404 page, not the API's
        raise AssertionError(f"a {response.status_code} without a JSON body ({content_type!r}): {response.text[:200]!r}")
    body = response.json()
    if not isinstance(body, dict) or not body:
        raise AssertionError(f"a {response.status_code} whose body is not an object naming the problem: {body!r}")
    if response.status_code in DETAIL_STATUSES or "detail" in body:
        assert "detail" in body, f"a {response.status_code} without `detail`: {body!r}"
        assert isinstance(body["detail"], str) and body["detail"].strip(), f"an empty `detail`: {body!r}"
        return None
    assert response.status_code == 400, f"an unexpected {response.status_code}: {body!r}"
    fields = _request_fields(case, response) | {"non_field_errors"}
    unknown = set(body) - fields
    assert not unknown, f"400 names {sorted(unknown)}, not fields of the request ({sorted(fields)}): {body!r}"
    for key, reasons in body.items():
        assert _reasons_ok(reasons), f"400 without a reason for {key!r}: {body!r}"
    return None


CHECKS = [not_a_server_error, response_schema_conformance, field_named_in_4xx]


# -- the run ------------------------------------------------------------------------------------------


def _case_strategy(operation, world: dict[str, Any]):
    """Cases of `operation`, valid and invalid. Each path parameter is one of team A's real
    values (ids, the tag's name) or, now and then, whatever the schema allows (an id of nothing,
    a huge one); the query parameters that name an object or a page name team A's, or huge
    numbers, or what the schema allows."""
    path_names = [p.name for p in operation.path_parameters]
    choices = {name: st.sampled_from([*world["path"][name] * 2, None, *(BIG[:1] if name.endswith("_id") else [])])
               for name in path_names if name in world["path"]}
    query_names = {p.name for p in operation.query}
    queries = [None] + [{name: value for name, value in query.items() if name in query_names}
                        for query in (world["query"], world["big_query"])]

    def cases(path: dict, mode: GenerationMode, query: dict | None):
        path = {name: value for name, value in path.items() if value is not None}  # None: generated
        return operation.as_strategy(generation_mode=mode, path_parameters=path or None, query=query or None)

    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    return st.tuples(st.fixed_dictionaries(choices), st.sampled_from(modes), st.sampled_from(queries)).flatmap(
        lambda args: cases(*args))


def _edge_cases(operation, world: dict[str, Any]):
    """Cases made by hand, the same every run: each id in the path past 64 bits (the others
    real), and the object-naming query parameters huge."""
    path = {p.name: world["path"][p.name][0] for p in operation.path_parameters if p.name in world["path"]}
    for name in path:
        if name.endswith("_id"):
            yield operation.Case(path_parameters={**path, name: BIG[0]})
    query = {name: value for name, value in world["big_query"].items() if name in {p.name for p in operation.query}}
    if query:
        yield operation.Case(path_parameters=path, query=query)


def _exercise(case, headers, wsgi_app, runs: Counter[str], statuses: Counter[int]) -> None:
    """Send `case` in a savepoint rolled back after it, and run the checks on the response."""
    del wsgi_app.server_errors[:]
    with transaction.atomic():
        try:
            response = case.call(headers=headers)
            runs[case.operation.label] += 1
            statuses[response.status_code] += 1
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Exception, BaseExceptionGroup) as exc:
            if wsgi_app.server_errors:
                exc.add_note("\nthe server's exception:\n" + "".join(wsgi_app.server_errors))
            raise
        finally:
            transaction.set_rollback(True)


def _fuzz(operation, world, headers, wsgi_app, runs: Counter[str], statuses: Counter[int]) -> None:
    for case in _edge_cases(operation, world):
        _exercise(case, headers, wsgi_app, runs, statuses)

    @settings(max_examples=2 * MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.generate, Phase.shrink], print_blob=False, suppress_health_check=list(HealthCheck))
    @given(case=_case_strategy(operation, world))
    def run(case):
        _exercise(case, headers, wsgi_app, runs, statuses)

    run()


@pytest.mark.parametrize("role", ["viewer", "member", "owner"])
def test_schemathesis_finds_no_server_error_and_every_refusal_names_its_field(role, world, wsgi_app):
    headers = {"Authorization": f"Token {world['tokens'][role]}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app, headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= len(api_urls.urlpatterns), [op.label for op in operations]  # one or more a route
    runs: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: dict[str, str] = {}

    for operation in operations:
        try:
            _fuzz(operation, world, headers, wsgi_app, runs, statuses)
        except (Exception, BaseExceptionGroup) as exc:  # keep going: report every operation that fails
            notes = "\n".join(getattr(exc, "__notes__", []))
            failures[operation.label] = f"{type(exc).__name__}: {exc}\n{notes}"

    total = sum(runs.values())
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    print(f"\n{role}: {total} cases over {len(runs)}/{len(operations)} operations, {server_errors} server errors; "
          f"statuses {dict(sorted(statuses.items()))}")
    assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
    assert server_errors == 0
    missing = [op.label for op in operations if runs[op.label] == 0]
    assert not missing, f"operations without a case: {missing}"
    assert total >= 3 * len(operations)
