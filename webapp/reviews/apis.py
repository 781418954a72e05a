"""REST API for a team's review of a cell: the review, comments, my rating, tags, the status, and
the activity feeds.

`?team=<id>` picks the team when the user's teams have trained the cell in more than one (else
the first such team); a cell none of them has trained is a 404. Writes go through the services,
which ask the permission table (403 `{detail}` naming the permission and the role), validate
(400 `{field: [reasons]}`) and rate limit comments and tags (429 `{detail}`).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import Throttled
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.api.errors import ErrorSerializer, ValidationErrorSerializer
from webapp.api.pagination import LimitOffsetPagination, get_paginated_response
from webapp.reviews import services
from webapp.reviews.models import COMMENT_MAX_LENGTH, NOTE_MAX_LENGTH, TAG_MAX_LENGTH, Activity, Comment, ReviewStatus
from webapp.reviews.selectors import (
    ReviewSubject,
    activity_for_subject,
    activity_list_for_user,
    activity_text,
    approval_decision_id,
    comment_html,
    comment_list,
    rating_summary,
    review_status_get,
    review_subject_get_for_user,
    tag_names,
)
from webapp.teams.permissions import perms_for

TEAM_PARAMETER = OpenApiParameter("team", int, description="The team whose review (default: the user's first "
                                                             "team that trained the cell).")


def _subject(request, cell_id: int) -> ReviewSubject:
    team = request.query_params.get("team")
    team_id = int(team) if team and team.isdigit() else None
    return review_subject_get_for_user(user=request.user, cell_id=cell_id, team_id=team_id)


def _rate_limited(call):
    try:
        return call()
    except services.ReviewRateLimited as exc:
        raise Throttled(wait=exc.wait_seconds, detail=str(exc)) from None


_WRITE_ERRORS = {400: ValidationErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


# -- output shapes ------------------------------------------------------------------------------


class RatingSummarySerializer(serializers.Serializer):
    mean = serializers.FloatField(allow_null=True)
    count = serializers.IntegerField()
    mine = serializers.IntegerField(allow_null=True, help_text="The user's own stars.")

    class Meta:
        ref_name = "ReviewRating"


class ReviewSerializer(serializers.Serializer):
    team = serializers.IntegerField(source="subject.team.pk")
    team_name = serializers.CharField(source="subject.team.name")
    cell = serializers.IntegerField(source="subject.cell.pk")
    cell_hash = serializers.CharField(source="subject.cell.cell_hash")
    search = serializers.IntegerField(source="subject.search.pk", allow_null=True, default=None)
    status = serializers.ChoiceField(choices=ReviewStatus.Status.choices, source="review.status")
    note = serializers.CharField(source="review.note")
    decided_by = serializers.CharField(source="review.decided_by.get_username", allow_null=True, default=None)
    decided_at = serializers.DateTimeField(source="review.decided_at", allow_null=True)
    decision = serializers.IntegerField(allow_null=True, help_text="While approved: the approving decision's id, "
                                                                   "for the transfer launched from it.")
    rating = RatingSummarySerializer()
    tags = serializers.ListField(child=serializers.CharField())
    permissions = serializers.DictField(child=serializers.BooleanField(),
                                        help_text="What the user's role allows here (reviews_approve, …).")

    class Meta:
        ref_name = "Review"


def review_response(request, subject: ReviewSubject, *, status_code: int = status.HTTP_200_OK) -> Response:
    data = {"subject": subject, "review": review_status_get(subject=subject),
            "decision": approval_decision_id(subject=subject),
            "rating": rating_summary(subject=subject, user=request.user), "tags": tag_names(subject=subject),
            "permissions": perms_for(request.user, subject.team)}
    return Response(ReviewSerializer(data).data, status=status_code)


class CommentSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.get_username")
    html = serializers.SerializerMethodField(help_text="The Markdown body rendered and sanitised.")

    class Meta:
        model = Comment
        ref_name = "ReviewComment"
        fields = ("id", "author", "body", "html", "search", "created_at")

    def get_html(self, comment: Comment) -> str:
        return comment_html(comment=comment)


class ActivitySerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.get_username", allow_null=True, default=None)
    cell_hash = serializers.CharField(source="cell.cell_hash")
    team_name = serializers.CharField(source="team.name")
    text = serializers.SerializerMethodField()

    class Meta:
        model = Activity
        ref_name = "ReviewActivity"
        fields = ("id", "team", "team_name", "cell", "cell_hash", "search", "actor", "verb", "detail", "text",
                  "created_at")

    def get_text(self, activity: Activity) -> str:
        return activity_text(activity=activity)


# -- operations ----------------------------------------------------------------------------------


class ReviewApi(APIView):
    @extend_schema(operation_id="reviews_retrieve", parameters=[TEAM_PARAMETER],
                   responses={200: ReviewSerializer, 404: ErrorSerializer})
    def get(self, request, cell_id: int):
        return review_response(request, _subject(request, cell_id))


class ReviewCommentListApi(APIView):
    pagination_class = LimitOffsetPagination

    class InputSerializer(serializers.Serializer):
        body = serializers.CharField(max_length=COMMENT_MAX_LENGTH, help_text="Markdown; no raw HTML.")

        class Meta:
            ref_name = "ReviewCommentCreate"

    @extend_schema(operation_id="reviews_comments_list", parameters=[TEAM_PARAMETER],
                   responses={200: CommentSerializer(many=True), 404: ErrorSerializer})
    def get(self, request, cell_id: int):
        return get_paginated_response(pagination_class=self.pagination_class, serializer_class=CommentSerializer,
                                      queryset=comment_list(subject=_subject(request, cell_id)), request=request,
                                      view=self)

    @extend_schema(operation_id="reviews_comments_create", parameters=[TEAM_PARAMETER], request=InputSerializer,
                   responses={201: CommentSerializer, 429: ErrorSerializer, **_WRITE_ERRORS})
    def post(self, request, cell_id: int):
        subject = _subject(request, cell_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        comment = _rate_limited(lambda: services.comment_create(user=request.user, subject=subject,
                                                                **serializer.validated_data))
        return Response(CommentSerializer(comment).data, status=status.HTTP_201_CREATED)


class ReviewRatingApi(APIView):
    class InputSerializer(serializers.Serializer):
        stars = serializers.IntegerField(min_value=1, max_value=5)

        class Meta:
            ref_name = "ReviewRatingSet"

    @extend_schema(operation_id="reviews_rating_set", parameters=[TEAM_PARAMETER], request=InputSerializer,
                   responses={200: ReviewSerializer, **_WRITE_ERRORS}, description="Set my 1–5 rating.")
    def put(self, request, cell_id: int):
        subject = _subject(request, cell_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.rating_set(user=request.user, subject=subject, **serializer.validated_data)
        return review_response(request, subject)


class ReviewTagListApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=TAG_MAX_LENGTH)

        class Meta:
            ref_name = "ReviewTagAdd"

    @extend_schema(operation_id="reviews_tags_add", parameters=[TEAM_PARAMETER], request=InputSerializer,
                   responses={200: ReviewSerializer, 429: ErrorSerializer, **_WRITE_ERRORS})
    def post(self, request, cell_id: int):
        subject = _subject(request, cell_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        _rate_limited(lambda: services.tag_add(user=request.user, subject=subject, **serializer.validated_data))
        return review_response(request, subject)


class ReviewTagDetailApi(APIView):
    @extend_schema(operation_id="reviews_tags_remove", parameters=[TEAM_PARAMETER], request=None,
                   responses={200: ReviewSerializer, **_WRITE_ERRORS})
    def delete(self, request, cell_id: int, name: str):
        subject = _subject(request, cell_id)
        services.tag_remove(user=request.user, subject=subject, name=name)
        return review_response(request, subject)


class ReviewStatusApi(APIView):
    class InputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=ReviewStatus.Status.choices)
        note = serializers.CharField(max_length=NOTE_MAX_LENGTH, required=False, allow_blank=True, default="",
                                     help_text="Required when rejecting.")

        class Meta:
            ref_name = "ReviewStatusSet"

    @extend_schema(operation_id="reviews_status_set", parameters=[TEAM_PARAMETER], request=InputSerializer,
                   responses={200: ReviewSerializer, **_WRITE_ERRORS},
                   description="candidate → shortlisted → approved, or → rejected (with a note).")
    def post(self, request, cell_id: int):
        subject = _subject(request, cell_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.review_status_set(user=request.user, subject=subject, **serializer.validated_data)
        return review_response(request, subject)


class ReviewActivityApi(APIView):
    pagination_class = LimitOffsetPagination

    @extend_schema(operation_id="reviews_cell_activity_list", parameters=[TEAM_PARAMETER],
                   responses={200: ActivitySerializer(many=True), 404: ErrorSerializer})
    def get(self, request, cell_id: int):
        return get_paginated_response(pagination_class=self.pagination_class, serializer_class=ActivitySerializer,
                                      queryset=activity_for_subject(subject=_subject(request, cell_id)),
                                      request=request, view=self)


class ActivityListApi(APIView):
    """The review activity of the user's teams, newest first; one search's or one team's."""

    pagination_class = LimitOffsetPagination

    class FilterSerializer(serializers.Serializer):
        search = serializers.IntegerField(required=False)
        team = serializers.IntegerField(required=False)
        cell = serializers.IntegerField(required=False)

        class Meta:
            ref_name = "ReviewActivityQuery"

    @extend_schema(operation_id="reviews_activity_list", parameters=[FilterSerializer],
                   responses={200: ActivitySerializer(many=True), 400: ValidationErrorSerializer})
    def get(self, request):
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        values = query.validated_data
        activity = activity_list_for_user(user=request.user, search_id=values.get("search"),
                                          team_id=values.get("team"), cell_id=values.get("cell"))
        return get_paginated_response(pagination_class=self.pagination_class, serializer_class=ActivitySerializer,
                                      queryset=activity, request=request, view=self)
