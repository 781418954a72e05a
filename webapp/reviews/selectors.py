"""Reads of reviews, scoped to the user's teams: a cell no team of the user's has trained, or
another team's review, is a 404.

A review belongs to a (team, cell): `review_subject_get_for_user` picks the team (the one asked
for, else the user's first team that trained the cell) and the search that found the team's
best result for it, which comments and activity record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db.models import Avg, Count, Exists, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404

from webapp.cells.models import Cell, CellResult
from webapp.reviews.markdown import render_markdown
from webapp.reviews.models import Activity, CellTag, Comment, Rating, ReviewStatus, Tag
from webapp.searches.models import Search
from webapp.teams.models import Membership, Team
from webapp.trials.models import Trial


@dataclass(frozen=True)
class ReviewSubject:
    """What a review is about: a cell, in one team, found by a search when one is known."""

    team: Team
    cell: Cell
    search: Search | None


def _team_ids(user) -> list[int]:
    return list(Membership.objects.filter(user=user).order_by("joined_at", "id").values_list("team_id", flat=True))


def review_subject_get_for_user(*, user, cell_id: int | None = None, cell_hash: str | None = None,
                                team_id: int | None = None) -> ReviewSubject:
    """The cell (by id or hash) in one of the user's teams that has trained it, or 404."""
    team_ids = _team_ids(user)
    if team_id is not None:
        team_ids = [team_id] if team_id in team_ids else []
    results = CellResult.objects.filter(team_id__in=team_ids).select_related("cell", "team", "best_trial__search")
    if cell_id is not None:
        results = results.filter(cell_id=cell_id)
    elif cell_hash is not None:
        results = results.filter(cell__cell_hash=cell_hash)
    else:
        raise Http404("no cell named")
    # Sorted here, not by the database: an ORDER BY on best_reward makes SQLite walk the team's
    # (team, -best_reward) index, every result of the team, instead of looking the cell up (0.1 s at
    # 88,000 results; bench/web_pages.py).
    candidates = sorted(results.order_by(), key=lambda result: (-result.best_reward, result.pk))
    if not candidates:
        raise Http404("No cell of your teams matches the given query.")
    by_team = sorted(candidates, key=lambda result: team_ids.index(result.team_id))  # first team, best result
    best = by_team[0]
    return ReviewSubject(team=best.team, cell=best.cell, search=best.best_trial.search)


def review_status_get(*, subject: ReviewSubject) -> ReviewStatus:
    """The cell's review in the team; an unsaved candidate when nobody has decided yet."""
    found = ReviewStatus.objects.filter(team=subject.team, cell=subject.cell).select_related("decided_by").first()
    return found or ReviewStatus(team=subject.team, cell=subject.cell)


def comment_list(*, subject: ReviewSubject) -> QuerySet[Comment]:
    return (Comment.objects.filter(team=subject.team, cell=subject.cell).select_related("author")
            .order_by("created_at", "id"))


def comment_html(*, comment: Comment) -> str:
    """The comment's body as safe HTML."""
    return render_markdown(comment.body)


def rating_summary(*, subject: ReviewSubject, user) -> dict[str, Any]:
    """{"mean": 3.5 or None, "count": n, "mine": the user's stars or None}."""
    ratings = Rating.objects.filter(team=subject.team, cell=subject.cell)
    summary = ratings.aggregate(mean=Avg("stars"), count=Count("id"))
    mean = summary["mean"]
    return {"mean": round(mean, 2) if mean is not None else None, "count": summary["count"],
            "mine": ratings.filter(user=user).values_list("stars", flat=True).first()}


def tag_names(*, subject: ReviewSubject) -> list[str]:
    return list(CellTag.objects.filter(tag__team=subject.team, cell=subject.cell)
                .order_by("tag__name").values_list("tag__name", flat=True))


def activity_list_for_user(*, user, cell_id: int | None = None, search_id: int | None = None,
                           team_id: int | None = None) -> QuerySet[Activity]:
    """The review activity of the user's teams, newest first: one cell's, one search's or one
    team's (another team's is empty, never shown)."""
    team_ids = _team_ids(user)
    if team_id is not None:
        team_ids = [team_id] if team_id in team_ids else []
    activity = Activity.objects.filter(team_id__in=team_ids)
    if cell_id is not None:
        activity = activity.filter(cell_id=cell_id)
    if search_id is not None:
        activity = activity.filter(search_id=search_id)
    return activity.select_related("actor", "cell", "team").order_by("-created_at", "-id")


def activity_for_subject(*, subject: ReviewSubject) -> QuerySet[Activity]:
    return (Activity.objects.filter(team=subject.team, cell=subject.cell).select_related("actor", "cell", "team")
            .order_by("-created_at", "-id"))


def activity_text(*, activity: Activity) -> str:
    """One line for the feed: "alice rated 4", "bob changed the status: shortlisted → rejected"."""
    who = activity.actor.get_username() if activity.actor else "someone"
    detail = activity.detail or {}
    if activity.verb == Activity.Verb.RATED:
        return f"{who} rated {detail.get('stars')}/5"
    if activity.verb in (Activity.Verb.TAGGED, Activity.Verb.UNTAGGED):
        return f"{who} {activity.verb} {detail.get('tag')}"
    if activity.verb == Activity.Verb.STATUS:
        line = f"{who} changed the status: {detail.get('from')} → {detail.get('to')}"
        return f"{line} ({detail['note']})" if detail.get("note") else line
    return f"{who} commented"


def approval_decision_id(*, subject: ReviewSubject) -> int | None:
    """The id of the Activity row that approved the cell, while it stays approved."""
    review = review_status_get(subject=subject)
    if review.status != ReviewStatus.Status.APPROVED:
        return None
    return (Activity.objects.filter(team=subject.team, cell=subject.cell, verb=Activity.Verb.STATUS,
                                    detail__to=ReviewStatus.Status.APPROVED)
            .order_by("-created_at", "-id").values_list("id", flat=True).first())


# -- the review queue and the side-by-side --------------------------------------------------------

#: The statuses that still await a decision; a cell with no ReviewStatus row is a candidate.
AWAITING = (ReviewStatus.Status.CANDIDATE, ReviewStatus.Status.SHORTLISTED)
COMPARE_MIN, COMPARE_MAX = 2, 4
RECENT_COMMENTS = 5


def review_queue_for_user(*, user, team_id: int | None = None, search_id: int | None = None,
                          tag: str | None = None, status: str | None = None) -> QuerySet[CellResult]:
    """The cells awaiting review in the user's teams (candidate or shortlisted), best reward first:
    one row per team best result (CellResult), annotated with `review_status`, `rating_mean`,
    `rating_count` and `comment_count`.

    Shaped like `cell_result_list_for_user`: constant team ids, so the database walks the
    (team, -best_reward) index in order and stops after a page; the status, tag and the
    annotations are correlated subqueries on the unique (team, cell) keys of the review tables,
    evaluated for the rows walked, never a join that must be sorted (bench/web_pages.py).
    """
    team_ids = _team_ids(user)
    if team_id is not None:
        team_ids = [team_id] if team_id in team_ids else []
    same = {"team_id": OuterRef("team_id"), "cell_id": OuterRef("cell_id")}
    statuses = ReviewStatus.objects.filter(**same)
    results = CellResult.objects.filter(team_id__in=team_ids)
    if status == ReviewStatus.Status.SHORTLISTED:
        results = results.filter(Exists(statuses.filter(status=ReviewStatus.Status.SHORTLISTED)))
    elif status == ReviewStatus.Status.CANDIDATE:
        results = results.exclude(Exists(statuses.exclude(status=ReviewStatus.Status.CANDIDATE)))
    else:
        results = results.exclude(Exists(statuses.exclude(status__in=AWAITING)))
    if search_id is not None:
        results = results.filter(best_trial__search_id=search_id)
    if tag:
        results = results.filter(Exists(CellTag.objects.filter(tag__team_id=OuterRef("team_id"), tag__name=tag,
                                                               cell_id=OuterRef("cell_id"))))
    ratings = Rating.objects.filter(**same).order_by().values("cell_id")
    comments = Comment.objects.filter(**same).order_by().values("cell_id")
    return (results.select_related("cell", "team")
            .annotate(review_status=Coalesce(Subquery(statuses.values("status")[:1]),
                                             Value(ReviewStatus.Status.CANDIDATE.value)),
                      rating_mean=Subquery(ratings.annotate(mean=Avg("stars")).values("mean")[:1]),
                      rating_count=Coalesce(Subquery(ratings.annotate(n=Count("id")).values("n")[:1]), 0),
                      comment_count=Coalesce(Subquery(comments.annotate(n=Count("id")).values("n")[:1]), 0))
            .defer("cell__genotype")
            .order_by("-best_reward", "id"))


def review_queue_count(*, user, team_id: int | None = None, search_id: int | None = None, tag: str | None = None,
                       status: str | None = None) -> int:
    """How many rows `review_queue_for_user` gives for the same filters, counted from the other
    side: the team's results (a covering index) less those decided, the decided ones found from
    the (team, status) index of the statuses. Counting the queryset itself probes the statuses once
    per result of the team: 0.2 s at 88,000 results, against about 15 ms (bench/web_pages.py)."""
    team_ids = _team_ids(user)
    if team_id is not None:
        team_ids = [team_id] if team_id in team_ids else []
    total = 0
    for team in team_ids:  # per team: a cell's review and tags are its team's
        results = CellResult.objects.filter(team_id=team)
        if search_id is not None:
            results = results.filter(best_trial_id__in=Trial.objects.filter(search_id=search_id).values("id"))
        if tag:
            results = results.filter(cell_id__in=CellTag.objects.filter(tag__team_id=team, tag__name=tag)
                                     .values("cell_id"))
        statuses = ReviewStatus.objects.filter(team_id=team)
        if status == ReviewStatus.Status.SHORTLISTED:
            total += results.filter(cell_id__in=statuses.filter(status=status).values("cell_id")).count()
            continue
        done = [ReviewStatus.Status.APPROVED, ReviewStatus.Status.REJECTED]
        if status == ReviewStatus.Status.CANDIDATE:
            done.append(ReviewStatus.Status.SHORTLISTED)
        total += results.count() - results.filter(cell_id__in=statuses.filter(status__in=done)
                                                  .values("cell_id")).count()
    return total


def review_queue_tags(*, results: list[CellResult]) -> list[CellResult]:
    """Set `tag_names` on each row of a page of the queue: one query for the whole page."""
    keys = {(result.team_id, result.cell_id) for result in results}
    found: dict[tuple[int, int], list[str]] = {}
    rows = (CellTag.objects.filter(cell_id__in={cell for _, cell in keys}, tag__team_id__in={team for team, _ in keys})
            .order_by("tag__name").values_list("tag__team_id", "cell_id", "tag__name"))
    for team_id, cell_id, name in rows:
        found.setdefault((team_id, cell_id), []).append(name)
    for result in results:
        result.tag_names = found.get((result.team_id, result.cell_id), [])  # type: ignore[attr-defined]
    return results


def parse_cell_hashes(value: str) -> list[str]:
    """`a,b,c` → the distinct hashes in order; 2 to 4 of them, else a ValidationError."""
    hashes = list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if not COMPARE_MIN <= len(hashes) <= COMPARE_MAX:
        raise ValidationError({"cells": [f"Compare {COMPARE_MIN} to {COMPARE_MAX} different cells "
                                         f"(comma-separated hashes); got {len(hashes)}."]})
    return hashes


def review_compare_for_user(*, user, cell_hashes: list[str], team_id: int | None = None) -> dict[str, Any]:
    """2–4 cells of one team side by side: each one's best proxy trial (val_acc, epochs, params,
    mult-adds), rating, status, tags, recent comments (safe HTML) and finished transfers.

    The team is the one asked for, else the first of the user's teams that trained the first
    cell; a cell that team has not trained is a 404. A fixed number of queries per cell (at most 4).
    """
    if not COMPARE_MIN <= len(cell_hashes) <= COMPARE_MAX:
        raise ValidationError({"cells": [f"Compare {COMPARE_MIN} to {COMPARE_MAX} cells."]})
    team = review_subject_get_for_user(user=user, cell_hash=cell_hashes[0], team_id=team_id).team
    results: dict[str, CellResult] = {}
    # The cells' ids first: with the hashes in a join SQLite walks the team's results instead.
    ids = list(Cell.objects.filter(cell_hash__in=cell_hashes).values_list("id", flat=True))
    found = (CellResult.objects.filter(team=team, cell_id__in=ids)
             .select_related("cell", "best_trial__search").order_by())  # sorted here: see above
    for result in sorted(found, key=lambda result: (-result.best_reward, result.pk)):
        results.setdefault(result.cell.cell_hash, result)  # the team's best result of each cell
    missing = [h for h in cell_hashes if h not in results]
    if missing:
        raise Http404(f"No cell of team {team.name} matches {missing[0][:12]}.")
    cell_ids = [results[h].cell_id for h in cell_hashes]
    statuses = dict(ReviewStatus.objects.filter(team=team, cell_id__in=cell_ids).values_list("cell_id", "status"))
    ratings = {row["cell_id"]: row for row in Rating.objects.filter(team=team, cell_id__in=cell_ids)
               .order_by().values("cell_id").annotate(mean=Avg("stars"), count=Count("id"))}
    tags: dict[int, list[str]] = {}
    for cell_id, name in (CellTag.objects.filter(tag__team=team, cell_id__in=cell_ids).order_by("tag__name")
                          .values_list("cell_id", "tag__name")):
        tags.setdefault(cell_id, []).append(name)
    # The transfers app sits above reviews (it launches from an approved decision): read its
    # model by name, so this module never imports it.
    transfer_model = apps.get_model("transfers", "Transfer")
    transfers: dict[int, list[dict[str, Any]]] = {}
    for row in (transfer_model.objects.filter(team=team, cell_id__in=cell_ids, status="finished")
                .order_by("-test_acc", "-id").values("id", "cell_id", "name", "dataset", "preset", "best_val_acc",
                                                     "test_acc", "params", "finished_at")):
        item: dict[str, Any] = dict(row)
        transfers.setdefault(item.pop("cell_id"), []).append(item)
    cells = []
    for cell_hash in cell_hashes:
        result = results[cell_hash]
        trial = result.best_trial
        rating: dict[str, Any] = dict(ratings.get(result.cell_id) or {})
        recent = list(Comment.objects.filter(team=team, cell_id=result.cell_id).select_related("author")
                      .order_by("-created_at", "-id")[:RECENT_COMMENTS])
        cells.append({
            "cell": result.cell, "result": result, "trial": trial, "search": trial.search,
            "val_acc": trial.val_acc, "epochs": list(trial.epochs or []),
            "params": result.params if result.params is not None else trial.params,
            "mult_adds": result.mult_adds if result.mult_adds is not None else trial.mult_adds,
            "status": statuses.get(result.cell_id, ReviewStatus.Status.CANDIDATE.value),
            "rating": {"mean": round(rating["mean"], 2) if rating.get("mean") is not None else None,
                       "count": rating.get("count", 0)},
            "tags": tags.get(result.cell_id, []),
            "comments": [{"id": c.pk, "author": c.author.get_username(), "created_at": c.created_at,
                          "html": render_markdown(c.body)} for c in recent],
            "transfers": transfers.get(result.cell_id, []),
        })
    return {"team": team, "cells": cells}


def review_tag_choices(*, user) -> list[str]:
    """The names of the tags of the user's teams, for the queue's filter."""
    return list(Tag.objects.filter(team_id__in=_team_ids(user)).order_by("name").values_list("name", flat=True)
                .distinct())
