"""Writes of a team's review of a cell: comment, rate, tag, change the status.

Every write checks the team's permission table (webapp.teams.permissions; PermissionDenied is a
403 from the API), validates its input (ValidationError `{field: [reason]}`, a 400), and writes
an Activity row in the same transaction. Comments and tags are rate limited per user
(`ReviewRateLimited`, a 429 from the API).
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from webapp.reviews.models import (
    COMMENT_MAX_LENGTH,
    NOTE_MAX_LENGTH,
    TAG_MAX_LENGTH,
    Activity,
    CellTag,
    Comment,
    Rating,
    ReviewStatus,
    Tag,
)
from webapp.reviews.selectors import ReviewSubject
from webapp.teams.permissions import require_perm

Status = ReviewStatus.Status

#: Where a status may go next. Approval is for transfer training, and only from the shortlist.
TRANSITIONS: dict[str, set[str]] = {
    Status.CANDIDATE: {Status.SHORTLISTED, Status.REJECTED},
    Status.SHORTLISTED: {Status.APPROVED, Status.REJECTED, Status.CANDIDATE},
    Status.APPROVED: {Status.SHORTLISTED},
    Status.REJECTED: {Status.CANDIDATE},
}

TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class ReviewRateLimited(Exception):
    """Too many comments and tags from one user in the window."""

    def __init__(self, message: str, *, wait_seconds: int):
        super().__init__(message)
        self.wait_seconds = wait_seconds


def _rate_limit() -> tuple[int, int]:
    """(actions, seconds): how many comments and tags a user may add in a sliding window."""
    return (int(getattr(settings, "CELLSEARCH_REVIEW_RATE_LIMIT", 30)),
            int(getattr(settings, "CELLSEARCH_REVIEW_RATE_WINDOW_SECONDS", 60)))


def _check_rate(*, user) -> None:
    limit, window = _rate_limit()
    # the user's row lock makes two concurrent requests of one user count one after the other
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    since = timezone.now() - timedelta(seconds=window)
    recent = Activity.objects.filter(actor=user, created_at__gte=since,
                                     verb__in=[Activity.Verb.COMMENTED, Activity.Verb.TAGGED])
    if recent.count() >= limit:
        oldest = recent.order_by("created_at").values_list("created_at", flat=True).first()
        wait = max(1, int((oldest + timedelta(seconds=window) - timezone.now()).total_seconds()) + 1) \
            if oldest else window
        raise ReviewRateLimited(f"at most {limit} comments and tags in {window} seconds: try again in {wait} s",
                                wait_seconds=wait)


def _activity(*, subject: ReviewSubject, user, verb: str, **detail) -> Activity:
    return Activity.objects.create(team=subject.team, cell=subject.cell, search=subject.search, actor=user,
                                   verb=verb, detail=detail)


@transaction.atomic
def comment_create(*, user, subject: ReviewSubject, body: str) -> Comment:
    require_perm(user, "reviews.comment", subject.team)
    body = (body or "").strip()
    if not body:
        raise ValidationError({"body": ["write something"]})
    if len(body) > COMMENT_MAX_LENGTH:
        raise ValidationError({"body": [f"at most {COMMENT_MAX_LENGTH} characters (this has {len(body)})"]})
    _check_rate(user=user)
    comment = Comment.objects.create(team=subject.team, cell=subject.cell, search=subject.search, author=user,
                                     body=body)
    _activity(subject=subject, user=user, verb=Activity.Verb.COMMENTED, comment=comment.pk)
    return comment


@transaction.atomic
def rating_set(*, user, subject: ReviewSubject, stars: int) -> Rating:
    """The user's 1–5 for the cell (a second rating replaces the first)."""
    require_perm(user, "reviews.rate", subject.team)
    if isinstance(stars, bool) or not isinstance(stars, int) or not 1 <= stars <= 5:
        raise ValidationError({"stars": ["a whole number from 1 to 5"]})
    rating, _ = Rating.objects.update_or_create(team=subject.team, cell=subject.cell, user=user,
                                                defaults={"stars": stars})
    _activity(subject=subject, user=user, verb=Activity.Verb.RATED, stars=stars)
    return rating


def _tag_name(name: str) -> str:
    name = (name or "").strip().lower()
    if not name:
        raise ValidationError({"name": ["name the tag"]})
    if len(name) > TAG_MAX_LENGTH:
        raise ValidationError({"name": [f"at most {TAG_MAX_LENGTH} characters"]})
    if not TAG_PATTERN.match(name):
        raise ValidationError({"name": ["letters, digits, '-', '_' and '.', starting with a letter or digit"]})
    return name


@transaction.atomic
def tag_add(*, user, subject: ReviewSubject, name: str) -> CellTag:
    """Put the team's tag `name` on the cell (made on first use); adding it twice changes nothing."""
    require_perm(user, "reviews.tag", subject.team)
    name = _tag_name(name)
    existing = CellTag.objects.filter(tag__team=subject.team, tag__name=name, cell=subject.cell).first()
    if existing is not None:
        return existing
    _check_rate(user=user)
    tag, _ = Tag.objects.get_or_create(team=subject.team, name=name, defaults={"created_by": user})
    cell_tag = CellTag.objects.create(tag=tag, cell=subject.cell, added_by=user)
    _activity(subject=subject, user=user, verb=Activity.Verb.TAGGED, tag=name)
    return cell_tag


@transaction.atomic
def tag_remove(*, user, subject: ReviewSubject, name: str) -> None:
    require_perm(user, "reviews.tag", subject.team)
    name = _tag_name(name)
    deleted, _ = CellTag.objects.filter(tag__team=subject.team, tag__name=name, cell=subject.cell).delete()
    if deleted:
        _activity(subject=subject, user=user, verb=Activity.Verb.UNTAGGED, tag=name)


@transaction.atomic
def review_status_set(*, user, subject: ReviewSubject, status: str, note: str = "") -> ReviewStatus:
    """Move the cell's review along TRANSITIONS; rejecting needs a note, approving the
    reviews.approve permission."""
    if status not in Status.values:
        raise ValidationError({"status": [f"one of {', '.join(Status.values)}"]})
    require_perm(user, "reviews.approve" if status == Status.APPROVED else "reviews.decide", subject.team)
    note = (note or "").strip()
    if len(note) > NOTE_MAX_LENGTH:
        raise ValidationError({"note": [f"at most {NOTE_MAX_LENGTH} characters"]})
    if status == Status.REJECTED and not note:
        raise ValidationError({"note": ["say why the cell is rejected"]})
    review, _ = ReviewStatus.objects.select_for_update().get_or_create(team=subject.team, cell=subject.cell)
    if status not in TRANSITIONS[review.status]:
        allowed = ", ".join(sorted(TRANSITIONS[review.status]))
        raise ValidationError({"status": [f"a {review.status} cell can become {allowed}, not {status}"]})
    before = review.status
    review.status, review.note, review.decided_by, review.decided_at = status, note, user, timezone.now()
    review.save()
    # the Activity row is the decision: its id is what a transfer launched from an approval names
    _activity(subject=subject, user=user, verb=Activity.Verb.STATUS, **{"from": before, "to": status, "note": note})
    return review
