"""A team's review of a cell: comments, ratings, tags, a status, and the activity they leave.

Everything belongs to one team (teams review their own cells and never see each other's
reviews); a cell reached from a search records the search, so feeds read per cell, per search
and per team.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

COMMENT_MAX_LENGTH = 5000
TAG_MAX_LENGTH = 32
NOTE_MAX_LENGTH = 1000


class ReviewStatus(models.Model):
    """Where a cell stands in a team's review: candidate → shortlisted → approved (for transfer
    training) or rejected (with a note)."""

    class Status(models.TextChoices):
        CANDIDATE = "candidate", "Candidate"
        SHORTLISTED = "shortlisted", "Shortlisted"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="review_statuses")
    cell = models.ForeignKey("cells.Cell", on_delete=models.CASCADE, related_name="review_statuses")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.CANDIDATE)
    note = models.TextField(blank=True, max_length=NOTE_MAX_LENGTH)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "cell"], name="unique_review_status")]
        indexes = [models.Index(fields=["team", "status"])]


class Comment(models.Model):
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="review_comments")
    cell = models.ForeignKey("cells.Cell", on_delete=models.CASCADE, related_name="review_comments")
    search = models.ForeignKey("searches.Search", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_comments")
    #: Markdown, as written; shown only through webapp.reviews.markdown.render_markdown.
    body = models.TextField(max_length=COMMENT_MAX_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["team", "cell", "created_at"])]


class Rating(models.Model):
    """One member's 1–5 for a cell in their team; the cell shows the mean."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="review_ratings")
    cell = models.ForeignKey("cells.Cell", on_delete=models.CASCADE, related_name="review_ratings")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_ratings")
    stars = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(5)])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "cell", "user"], name="unique_rating"),
            models.CheckConstraint(condition=models.Q(stars__gte=1, stars__lte=5), name="rating_stars_1_to_5"),
        ]


class Tag(models.Model):
    """A team's short label (`fast`, `needs-more-epochs`), put on any of its cells."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="review_tags")
    name = models.CharField(max_length=TAG_MAX_LENGTH)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="unique_tag")]


class CellTag(models.Model):
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="cell_tags")
    cell = models.ForeignKey("cells.Cell", on_delete=models.CASCADE, related_name="review_tags")
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tag", "cell"], name="unique_cell_tag")]


class Activity(models.Model):
    """One row per review change: who did what, when, to which cell (and search), in which team."""

    class Verb(models.TextChoices):
        COMMENTED = "commented", "commented"
        RATED = "rated", "rated"
        TAGGED = "tagged", "tagged"
        UNTAGGED = "untagged", "untagged"
        STATUS = "status", "changed the status"

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="review_activity")
    cell = models.ForeignKey("cells.Cell", on_delete=models.CASCADE, related_name="review_activity")
    search = models.ForeignKey("searches.Search", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    verb = models.CharField(max_length=12, choices=Verb.choices)
    #: What changed, for the feed: {"stars": 4}, {"tag": "fast"}, {"from": …, "to": …, "note": …},
    #: {"comment": id}.
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["team", "-created_at"]),
            models.Index(fields=["team", "cell", "-created_at"]),
            models.Index(fields=["team", "search", "-created_at"]),
        ]
