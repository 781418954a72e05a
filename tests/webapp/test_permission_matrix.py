"""The permission matrix (issue 16): every page and API endpoint, for team A's owner, member and
viewer, team B's owner and an anonymous visitor.

The routes come from the URL conf itself (`ROUTES_IN_URLCONF`), and `MATRIX` must name every one
of them, so a new page or endpoint without a row fails `test_every_route_has_a_row`. A row says,
per method (and per variant of its kwargs), how to fill the URL and the body from team A's
objects, and the least role that may use it ("user": any signed-in user). Then, per user:

- anonymous: a page redirects to the login page, the API answers 401; nothing is written;
- team B's owner: a route that names a team-A object answers 404 and writes nothing; a route
  without one succeeds (for team B) and shows none of team A's objects;
- a team-A role below the least: the API answers 403; a page redirects with the error message
  "… needs the <least> role or above …; yours is <role>." and nothing is written;
- a team-A role at or above the least: 2xx or 3xx, and no refusal message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.apps import apps
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from tests.webapp.conftest import join_team
from webapp.cells.services import cell_result_update
from webapp.reviews import services as review_services
from webapp.reviews.models import ReviewStatus
from webapp.reviews.selectors import ReviewSubject
from webapp.searches.models import OneShotRun, Search
from webapp.teams import services as team_services
from webapp.teams.models import Membership, Team
from webapp.transfers.models import Transfer
from webapp.trials.models import Trial

pytestmark = pytest.mark.django_db

#: Routes left out of the matrix, each with why (named routes by name; unnamed ones by their path).
EXCLUDED = {
    "login": "the login page is the one page open to anonymous users",
    "logout": "Django's own view: ends the session of whoever asks",
    "schema": "drf-spectacular's OpenAPI schema (no team objects; SERVE_PERMISSIONS IsAuthenticated)",
    "swagger-ui": "drf-spectacular's Swagger UI (a static page around the schema)",
    "admin:*": "Django's admin site, staff only, with its own permission checks",
    "favicon.ico": "a redirect to the static favicon, open to anyone",
}


def _collect(resolver: URLResolver, prefix: str = "", route: str = "") -> set[str]:
    names: set[str] = set()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            namespace = f"{prefix}{entry.namespace}:" if entry.namespace else prefix
            if namespace == "admin:":
                names.add("admin:*")
                continue
            names |= _collect(entry, namespace, route + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            names.add(prefix + entry.name if entry.name else route + str(entry.pattern))
    return names


ROUTES_IN_URLCONF = _collect(get_resolver())

ROLE_RANK = {"user": 0, "viewer": 1, "member": 2, "owner": 3}
SEARCH_NAME = "secret-search-of-team-a"
TRANSFER_NAME = "secret-transfer-of-team-a"
TAG = "team-a-tag"


@dataclass
class World:
    """Team A's objects, and the users."""

    team: Team
    owner: object
    member: object
    viewer: object
    outsider: object  # team B's owner
    target: object  # another member of team A, whose role the owners change or who is removed
    stranger: object  # in no team of ours: invited by username
    search: Search
    other_search: Search  # a second search to compare with
    trial: object
    cell: object
    second_cell: object  # the other search's cell, to compare with
    transfer: Transfer
    subject: ReviewSubject
    token: str  # a pending invite link to team A

    @property
    def markers(self) -> list[str]:
        return [SEARCH_NAME, TRANSFER_NAME, self.cell.cell_hash, TAG]


@dataclass(frozen=True)
class Case:
    method: str
    least: str  # "user", "viewer", "member", "owner"
    kwargs: Callable[[World], dict] = lambda w: {}
    data: Callable[[World], dict] | None = None  # the body (a write) or the query (a read)
    setup: Callable[[World], None] | None = None  # put the object in a state the action needs
    outsider: str = "404"  # "404": names a team-A object; "hidden": team B succeeds, sees nothing of A
    label: str = ""
    writes: bool = True  # whether a user at or above `least` changes something (a write method)


def _search(w):
    return {"pk": w.search.pk}


def _api_search(w):
    return {"search_id": w.search.pk}


def _trial(w):
    return {"pk": w.trial.pk}


def _api_trial(w):
    return {"trial_id": w.trial.pk}


def _trial_in_flight(w):
    """Put team A's trial back in training, so a cancel has something to stop."""
    Trial.objects.filter(pk=w.trial.pk).update(status=Trial.Status.RUNNING, task_id="task-of-trial-0")


def _started_search(w):
    """Give team A's search a strategy state, so that it can be forked (the bytes are copied, not read)."""
    Search.objects.filter(pk=w.search.pk).update(strategy_state=b"strategy state")


def _transfer(w):
    return {"pk": w.transfer.pk}


def _api_transfer(w):
    return {"transfer_id": w.transfer.pk}


def _api_cell(w):
    return {"cell_id": w.cell.pk}


def _team(w):
    return {"team_id": w.team.pk}


def _hand_cell() -> dict:
    """A cell of the default nasnet space, to enqueue by hand."""
    import numpy as np

    from searchcore.spaces import create_space

    return create_space("nasnet").sample(np.random.default_rng(0)).to_dict()


def _oneshot_search(w):
    """Make team A's search a one-shot one whose supernet reported its cell and stored a checkpoint."""
    Search.objects.filter(pk=w.search.pk).update(strategy="enas")
    cell = {"cell_hash": w.cell.cell_hash, "genotype": w.cell.genotype, "val_acc": 0.5}
    run = OneShotRun.objects.create(search=w.search, config={}, checkpoint_epoch=1, epochs=[{"epoch": 1,
                                                                                            "leaders": [cell]}])
    run.last_checkpoint.save("last.pt", ContentFile(b"supernet"), save=True)


def _pause_search(w):
    Search.objects.filter(pk=w.search.pk).update(status=Search.Status.PAUSED)


def _pause_transfer(w):
    Transfer.objects.filter(pk=w.transfer.pk).update(status=Transfer.Status.PAUSED)


def _review_action(action):
    return lambda w: {"cell_hash": w.cell.cell_hash, "action": action}


def _team_action(action):
    return lambda w: {"team_id": w.team.pk, "action": action}


def _team_q(w):
    return {"team": w.team.pk}


SEARCH_FORM = {
    "name": "new search", "space": "nasnet", "strategy": "random", "dataset": "digits", "budget": "3",
    "parallelism": "1", "epochs": "1", "cells": "1", "filters": "48", "batch_size": "64", "seed": "0",
    "strategy_options": "", "space_options": "",
}
SEARCH_API = {"space": "nasnet", "strategy": "random", "dataset": "digits", "budget": 3,
              "proxy": {"epochs": 1, "cells": 1, "filters": 48}}
TRANSFER_FORM = {"name": "full size", "preset": "quick", "dataset": "digits"}

#: Route name → the cases to try. Pages are the routes outside the `api` namespace.
MATRIX: dict[str, list[Case]] = {
    # -- searches (pages)
    "searches:list": [Case("GET", "user", outsider="hidden")],
    "searches:list-live": [Case("GET", "user", outsider="hidden")],
    "searches:new": [Case("GET", "member", outsider="hidden"),
                     Case("POST", "member", data=lambda w: SEARCH_FORM, outsider="hidden")],
    "searches:estimate": [Case("GET", "user", data=lambda w: SEARCH_FORM, outsider="hidden")],
    "searches:compare": [Case("GET", "viewer", data=lambda w: {"searches": f"{w.search.pk},{w.other_search.pk}"},
                              outsider="hidden")],
    "searches:compare-seeds": [Case("POST", "member", data=lambda w: {"base": w.search.pk, "strategies": ["ppo"],
                                                                    "seeds": "1"})],
    "searches:detail": [Case("GET", "viewer", _search)],
    "searches:live": [Case("GET", "viewer", _search)],
    "searches:chart": [Case("GET", "viewer", _search)],
    "searches:supernet-cell-diagram": [Case("GET", "viewer", lambda w: {"pk": w.search.pk, "cell_hash": w.cell.cell_hash},
                                            setup=_oneshot_search)],
    "searches:supernet-checkpoint": [Case("GET", "viewer", _search, setup=_oneshot_search)],
    # -- a search's analysis (pages, figures' data and exports)
    "analysis:page": [Case("GET", "viewer", _search)],
    "analysis:curves": [Case("GET", "viewer", _search)],
    "analysis:cost": [Case("GET", "viewer", _search)],
    "analysis:ops": [Case("GET", "viewer", _search)],
    "analysis:controller": [Case("GET", "viewer", _search)],
    "analysis:trials-csv": [Case("GET", "viewer", _search)],
    "analysis:trials-parquet": [Case("GET", "viewer", _search)],
    "searches:pause": [Case("POST", "member", _search)],
    "searches:resume": [Case("POST", "member", _search, setup=_pause_search)],
    "searches:cancel": [Case("POST", "member", _search)],
    "searches:steer": [Case("POST", "member", _search, data=lambda w: {"parallelism": 2, "budget": 12})],
    "searches:enqueue": [Case("POST", "member", _search, data=lambda w: {"genotype": json.dumps(_hand_cell())})],
    "searches:fork": [Case("GET", "member", _search),
                      Case("POST", "member", _search, data=lambda w: {"trials": "0"}, setup=_started_search)],
    "searches:trial-cancel": [Case("POST", "member", lambda w: {"pk": w.search.pk, "trial_pk": w.trial.pk},
                                   setup=_trial_in_flight)],
    # -- trials, cells (pages)
    "trials:detail": [Case("GET", "viewer", _trial)],
    "trials:live": [Case("GET", "viewer", _trial)],
    "cells:list": [Case("GET", "user", outsider="hidden")],
    # -- workers (pages): shared by every team; a trial's log as its page's
    "workers:list": [Case("GET", "user", outsider="hidden")],
    "workers:trial-log": [Case("GET", "viewer", _trial)],
    # -- reviews (pages)
    "reviews:detail": [Case("GET", "viewer", lambda w: {"cell_hash": w.cell.cell_hash})],
    "reviews:action": [
        Case("POST", "viewer", _review_action("comment"), data=lambda w: {"body": "looks good"}, label="comment"),
        Case("POST", "member", _review_action("rate"), data=lambda w: {"stars": "4"}, label="rate"),
        Case("POST", "member", _review_action("tag"), data=lambda w: {"name": "promising"}, label="tag"),
        Case("POST", "member", _review_action("untag"), data=lambda w: {"name": TAG}, label="untag"),
        Case("POST", "member", _review_action("status"), data=lambda w: {"status": "shortlisted"}, label="status"),
    ],
    "review_queue:list": [Case("GET", "user", outsider="hidden")],
    "review_queue:compare": [Case("GET", "viewer", data=lambda w: {"cells": f"{w.cell.cell_hash},{w.second_cell.cell_hash}"})],
    "review_queue:activity": [Case("GET", "user", outsider="hidden"),
                              Case("GET", "user", outsider="hidden", data=lambda w: {"search": w.search.pk}),
                              Case("GET", "user", outsider="hidden", data=lambda w: {"team": w.team.pk})],
    # -- transfers (pages)
    "transfers:list": [Case("GET", "user", outsider="hidden")],
    "transfers:new": [Case("GET", "member", data=lambda w: {"trial": w.trial.pk}),
                      Case("POST", "member", data=lambda w: {"trial": w.trial.pk, **TRANSFER_FORM})],
    "transfers:detail": [Case("GET", "viewer", _transfer)],
    "transfers:live": [Case("GET", "viewer", _transfer)],
    "transfers:pause": [Case("POST", "member", _transfer)],
    "transfers:resume": [Case("POST", "member", _transfer, setup=_pause_transfer)],
    "transfers:cancel": [Case("POST", "member", _transfer)],
    "transfers:file": [Case("GET", "viewer", lambda w: {"pk": w.transfer.pk, "kind": "genotype"})],
    # -- teams (pages)
    "teams:list": [Case("GET", "user", outsider="hidden")],
    "teams:detail": [Case("GET", "viewer", _team)],
    "teams:action": [
        Case("POST", "owner", _team_action("invite"), data=lambda w: {"username": w.stranger.username, "role": "viewer"},
             label="invite"),
        Case("POST", "owner", _team_action("link"), data=lambda w: {"role": "viewer", "expires_in_days": "7"},
             label="link"),
        Case("POST", "owner", _team_action("role"), data=lambda w: {"user": w.target.pk, "role": "viewer"},
             label="role"),
        Case("POST", "owner", _team_action("remove"), data=lambda w: {"user": w.target.pk}, label="remove"),
    ],
    # An invite link is a capability: whoever holds the token may see it and join (team B's owner
    # too, by design); team A's members are told they are in already, and nothing changes.
    "teams:join": [Case("GET", "user", lambda w: {"token": w.token}, outsider="hidden"),
                   Case("POST", "user", lambda w: {"token": w.token}, outsider="join", writes=False)],
    # -- the API: searches, trials
    "api:search-list": [Case("GET", "user", outsider="hidden"),
                        Case("POST", "member", data=lambda w: SEARCH_API, outsider="hidden")],
    "api:search-detail": [Case("GET", "viewer", _api_search),
                          Case("PATCH", "member", _api_search, data=lambda w: {"parallelism": 2, "budget": 12})],
    "api:search-pause": [Case("POST", "member", _api_search)],
    "api:search-resume": [Case("POST", "member", _api_search, setup=_pause_search)],
    "api:search-cancel": [Case("POST", "member", _api_search)],
    "api:search-enqueue": [Case("POST", "member", _api_search, data=lambda w: {"genotype": _hand_cell()})],
    "api:search-trials": [Case("GET", "viewer", _api_search)],
    "api:search-fork": [Case("POST", "member", _api_search, data=lambda w: {"trials": [0]}, setup=_started_search)],
    "api:search-seeds": [Case("POST", "member", _api_search, data=lambda w: {"strategies": ["ppo"], "seeds": 1})],
    "api:search-activity": [Case("GET", "viewer", _api_search)],
    "api:compare": [Case("GET", "viewer", data=lambda w: {"searches": f"{w.search.pk},{w.other_search.pk}"},
                         outsider="400")],
    "api:trial-detail": [Case("GET", "viewer", _api_trial)],
    "api:trial-checkpoint": [Case("GET", "viewer", _api_trial)],
    "api:trial-cancel": [Case("POST", "member", _api_trial, setup=_trial_in_flight)],
    # -- the API: cells, reviews
    "api:cell-list": [Case("GET", "user", outsider="hidden")],
    "api:cell-diagram": [Case("GET", "viewer", _api_cell)],
    "api:cell-genotype-json": [Case("GET", "viewer", _api_cell)],
    "api:cell-genotype-text": [Case("GET", "viewer", _api_cell)],
    "api:review-detail": [Case("GET", "viewer", _api_cell)],
    "api:review-comments": [Case("GET", "viewer", _api_cell),
                            Case("POST", "viewer", _api_cell, data=lambda w: {"body": "looks good"})],
    "api:review-rating": [Case("PUT", "member", _api_cell, data=lambda w: {"stars": 4})],
    "api:review-tags": [Case("POST", "member", _api_cell, data=lambda w: {"name": "promising"})],
    "api:review-tag": [Case("DELETE", "member", lambda w: {"cell_id": w.cell.pk, "name": TAG})],
    "api:review-status": [Case("POST", "member", _api_cell, data=lambda w: {"status": "shortlisted"})],
    "api:review-activity": [Case("GET", "viewer", _api_cell)],
    "api:review-activity-list": [Case("GET", "user", outsider="hidden")],
    "api:review-queue": [Case("GET", "user", outsider="hidden")],
    "api:review-compare": [Case("GET", "viewer", data=lambda w: {"cells": f"{w.cell.cell_hash},{w.second_cell.cell_hash}"})],
    # -- the API: teams
    "api:team-list": [Case("GET", "user", outsider="hidden")],
    "api:team-detail": [Case("GET", "viewer", _team)],
    "api:team-members": [Case("GET", "viewer", _team),
                         Case("POST", "owner", _team, data=lambda w: {"username": w.stranger.username})],
    "api:team-member": [Case("GET", "viewer", lambda w: {"team_id": w.team.pk, "user_id": w.target.pk}),
                        Case("PATCH", "owner", lambda w: {"team_id": w.team.pk, "user_id": w.target.pk},
                             data=lambda w: {"role": "viewer"}),
                        Case("DELETE", "owner", lambda w: {"team_id": w.team.pk, "user_id": w.target.pk})],
    "api:team-invites": [Case("POST", "owner", _team, data=lambda w: {"role": "viewer"})],
    # -- the API: transfers
    "api:transfer-list": [Case("GET", "user", outsider="hidden"),
                          Case("POST", "member", data=lambda w: {"trial": w.trial.pk, "preset": "quick"})],
    "api:transfer-presets": [Case("GET", "user", outsider="hidden")],
    "api:worker-list": [Case("GET", "user", outsider="hidden")],
    "api:transfer-detail": [Case("GET", "viewer", _api_transfer)],
    "api:transfer-pause": [Case("POST", "member", _api_transfer)],
    "api:transfer-resume": [Case("POST", "member", _api_transfer, setup=_pause_transfer)],
    "api:transfer-cancel": [Case("POST", "member", _api_transfer)],
    "api:transfer-file": [Case("GET", "viewer", lambda w: {"transfer_id": w.transfer.pk, "kind": "genotype"})],
}


def test_every_route_has_a_row():
    collected = ROUTES_IN_URLCONF - set(EXCLUDED)
    missing = sorted(collected - set(MATRIX))
    assert not missing, "add " + ", ".join(missing) + " to the permission matrix"
    gone = sorted(set(MATRIX) - collected)
    assert not gone, f"no such routes any more, drop their rows: {', '.join(gone)}"
    assert not set(EXCLUDED) - ROUTES_IN_URLCONF, "an excluded route is gone: drop it from EXCLUDED"


def test_nothing_is_open_but_the_excluded_routes():
    """The excluded drf-spectacular routes still need a login."""
    for path in ("/api/schema/", "/api/docs/"):
        assert APIClient().get(path).status_code in (401, 403)


USERS = ("anonymous", "outsider", "viewer", "member", "owner")
CASES = [pytest.param(name, case, who, id=f"{name}-{case.method}{'-' + case.label if case.label else ''}-{who}")
         for name, cases in sorted(MATRIX.items()) for case in cases for who in USERS]


# -- the world ------------------------------------------------------------------------------------


@pytest.fixture
def world(user, other_user, make_trial, make_cell, concat_genotype, settings, tmp_path, no_broker) -> World:
    from webapp.teams.services import user_create

    settings.MEDIA_ROOT = str(tmp_path / "media")
    team = Team.objects.get(name="team-a")
    viewer, member, target = (join_team(team, "vera", "viewer"), join_team(team, "max", "member"),
                              join_team(team, "tara", "member"))
    stranger = user_create(username="carol", password="carol-password-1", team_name="team-c")
    search = Search.objects.create(team=team, owner=user, name=SEARCH_NAME, budget=10, proxy={"epochs": 1},
                                   proxy_key="p", strategy="random", status=Search.Status.RUNNING)
    other_search = Search.objects.create(team=team, owner=user, name="second", budget=10, proxy={"epochs": 1},
                                         proxy_key="p", strategy="random", status=Search.Status.FINISHED)
    trial = make_trial(search, 0, reward=0.8)
    trial.checkpoint.save("checkpoint.pt", ContentFile(b"weights"), save=True)
    cell_result_update(trial=trial)
    second = make_trial(other_search, 0, cell=make_cell(concat_genotype), reward=0.7)
    cell_result_update(trial=second)
    transfer = Transfer.objects.create(team=team, owner=user, name=TRANSFER_NAME, cell=trial.cell,
                                       genotype=trial.genotype, cell_hash=trial.cell_hash, source_trial=trial,
                                       source_search=search, status=Transfer.Status.RUNNING, config={"epochs": 2})
    subject = ReviewSubject(team=team, cell=trial.cell, search=search)
    review_services.tag_add(user=user, subject=subject, name=TAG)
    review_services.comment_create(user=user, subject=subject, body=f"about {SEARCH_NAME}")
    _, token = team_services.invite_create(actor=user, team=team, role=Membership.Role.VIEWER)
    return World(team=team, owner=user, member=member, viewer=viewer, outsider=other_user, target=target,
                 stranger=stranger, search=search, other_search=other_search, trial=trial, cell=trial.cell,
                 second_cell=second.cell, transfer=transfer, subject=subject, token=token)


def _state() -> dict:
    """What a refused request must leave as it was: every row count of the app's models, and the
    states that the steering and the reviews change."""
    state = {model._meta.label: model.objects.count() for model in apps.get_models()
             if model.__module__.startswith("webapp.")}
    state["searches"] = sorted(Search.objects.values_list("id", "status", "budget", "parallelism",
                                                              "enqueued_cells"))
    state["trials"] = sorted(Trial.objects.values_list("id", "status"))
    state["transfers"] = sorted(Transfer.objects.values_list("id", "status", "pause_requested"))
    state["reviews"] = sorted(ReviewStatus.objects.values_list("id", "status"))
    state["memberships"] = sorted(Membership.objects.values_list("team_id", "user_id", "role"))
    return state


def _messages(client: Client, response) -> str:
    """The messages a page's redirect carries, read from the page it leads to."""
    if response.status_code not in (301, 302, 303):
        return ""
    page = client.get(response["Location"])
    return " ".join(str(m) for m in page.context["messages"]) if page.context else ""


def _request(name: str, case: Case, w: World, person):
    url = reverse(name, kwargs=case.kwargs(w))
    data = case.data(w) if case.data else None
    if name.startswith("api:"):
        client = APIClient()
        if person is not None:
            client.force_authenticate(user=person)
        call = getattr(client, case.method.lower())
        response = call(url, data) if case.method == "GET" else call(url, data, format="json")
    else:
        client = Client()
        if person is not None:
            client.force_login(person)
        response = getattr(client, case.method.lower())(url, data or {})
    return client, url, response


def _body(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


@pytest.mark.parametrize(("name", "case", "who"), CASES)
def test_permission_matrix(name, case, who, world):
    w = world
    if case.setup:
        case.setup(w)
    person = None if who == "anonymous" else getattr(w, who)
    api = name.startswith("api:")
    before = _state()
    client, url, response = _request(name, case, w, person)
    code = response.status_code
    what = f"{case.method} {url} as {who}"

    if who == "anonymous":
        if api:
            assert code == 401, f"{what}: {code}"
        else:
            assert code == 302 and response["Location"].startswith(f"{reverse('login')}?next="), f"{what}: {code}"
        assert _state() == before, f"{what} wrote something"
        return

    if who == "outsider":
        if case.outsider == "404":
            assert code == 404, f"{what}: {code} (team A's object must not be found)"
            assert _state() == before, f"{what} wrote something"
        elif case.outsider == "400":  # a query naming team A's objects: refused as unknown ids
            assert code == 400, f"{what}: {code}"
            assert _state() == before, f"{what} wrote something"
        elif case.outsider == "join":  # the invite link is a capability: the holder joins
            assert code == 302
            assert Membership.objects.filter(team=w.team, user=person, role="viewer").exists()
            return
        else:
            assert 200 <= code < 400, f"{what}: {code}"
        body = _body(response)
        if code in (301, 302, 303) and not api:
            body += _body(client.get(response["Location"]))
        for marker in w.markers:
            assert marker not in body, f"{what} shows team A's {marker!r}"
        return

    if ROLE_RANK[who] < ROLE_RANK[case.least]:
        if api:
            assert code == 403, f"{what}: {code}"
            assert f"needs the {case.least} role or above" in response.json()["detail"]
        else:
            assert code == 302, f"{what}: {code}"
            messages = _messages(client, response)
            assert f"needs the {case.least} role or above" in messages and f"yours is {who}" in messages, (
                f"{what}: {messages!r}")
        assert _state() == before, f"{what} wrote something"
        return

    assert 200 <= code < 400, f"{what}: {code} {_body(response)[:500]}"
    if not api:
        messages = _messages(client, response)
        assert "role or above" not in messages and "Could not" not in messages, f"{what}: {messages!r}"
    if case.method != "GET":
        if case.writes:
            assert _state() != before, f"{what} changed nothing"
        else:
            assert _state() == before, f"{what} wrote something"
