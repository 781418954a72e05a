"""Reads of reviews, scoped to the user's teams: a cell no team of the user's has trained, or
another team's review, is a 404.

A review belongs to a (team, cell): `review_subject_get_for_user` picks the team (the one asked
for, else the user's first team that trained the cell) and the search that found the team's
best result for it, which comments and activity record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Avg, Count, QuerySet
from django.http import Http404

from webapp.cells.models import Cell, CellResult
from webapp.reviews.markdown import render_markdown
from webapp.reviews.models import Activity, CellTag, Comment, Rating, ReviewStatus
from webapp.searches.models import Search
from webapp.teams.models import Membership, Team


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
    candidates = list(results.order_by("-best_reward", "id"))
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
