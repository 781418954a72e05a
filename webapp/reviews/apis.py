"""REST API for a team's review of a cell: the review, comments, my rating, tags, the status, and
the activity feeds.

`?team=<id>` picks the team when the user's teams have trained the cell in more than one (else
the first such team); a cell none of them has trained is a 404. Writes go through the services,
which ask the permission table (403 `{detail}` naming the permission and the role), validate
(400 `{field: [reasons]}`) and rate limit comments and tags (429 `{detail}`).
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import Throttled
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.api.errors import ErrorSerializer, ValidationErrorSerializer
from webapp.api.pagination import LimitOffsetPagination, get_paginated_response
from webapp.ids import id_or_404
from webapp.reviews import services
from webapp.reviews.models import COMMENT_MAX_LENGTH, NOTE_MAX_LENGTH, TAG_MAX_LENGTH, Activity, Comment, ReviewStatus
from webapp.reviews.selectors import (
    AWAITING,
    ReviewSubject,
    activity_for_subject,
    activity_list_for_user,
    activity_text,
    approval_decision_id,
    comment_html,
    comment_list,
    parse_cell_hashes,
    rating_summary,
    review_compare_for_user,
    review_queue_count,
    review_queue_for_user,
    review_queue_tags,
    review_status_get,
    review_subject_get_for_user,
    tag_names,
)
from webapp.teams.permissions import perms_for

TEAM_PARAMETER = OpenApiParameter("team", int, description="The team whose review (default: the user's first "
                                                             "team that trained the cell).")


def _subject(request, cell_id: int) -> ReviewSubject:
    id_or_404(cell_id, "No cell of your teams matches the given query.")
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


class RatingMeanSerializer(serializers.Serializer):
    mean = serializers.FloatField(allow_null=True)
    count = serializers.IntegerField()

    class Meta:
        ref_name = "ReviewRatingMean"


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


# -- the queue and the side-by-side ---------------------------------------------------------------


class QueuePagination(LimitOffsetPagination):
    """Limit/offset with the count the queue's selector computes (cheaper than COUNT(*) of the page's query)."""

    known_count = 0

    def get_count(self, queryset) -> int:
        return self.known_count


class ReviewQueueApi(APIView):
    """The cells awaiting review in the user's teams (candidate or shortlisted; a cell with a
    result and no review yet is a candidate), best proxy reward first."""

    pagination_class = QueuePagination

    class FilterSerializer(serializers.Serializer):
        team = serializers.IntegerField(required=False)
        search = serializers.IntegerField(required=False, help_text="Only cells whose best trial is this search's.")
        tag = serializers.CharField(required=False, max_length=TAG_MAX_LENGTH)
        status = serializers.ChoiceField(choices=[(s.value, s.label) for s in map(ReviewStatus.Status, AWAITING)],
                                         required=False)

        class Meta:
            ref_name = "ReviewQueueQuery"

    class OutputSerializer(serializers.Serializer):
        team = serializers.IntegerField(source="team_id")
        team_name = serializers.CharField(source="team.name")
        cell = serializers.IntegerField(source="cell_id")
        cell_hash = serializers.CharField(source="cell.cell_hash")
        review_url = serializers.SerializerMethodField()
        dataset = serializers.CharField()
        best_reward = serializers.FloatField()
        best_trial = serializers.IntegerField(source="best_trial_id")
        params = serializers.IntegerField(allow_null=True)
        mult_adds = serializers.IntegerField(allow_null=True)
        status = serializers.ChoiceField(choices=ReviewStatus.Status.choices, source="review_status")
        rating = serializers.SerializerMethodField()
        tags = serializers.ListField(child=serializers.CharField(), source="tag_names")
        comment_count = serializers.IntegerField()

        class Meta:
            ref_name = "ReviewQueueItem"

        def get_review_url(self, result) -> str:
            return f"{reverse('reviews:detail', kwargs={'cell_hash': result.cell.cell_hash})}?team={result.team_id}"

        @extend_schema_field(RatingMeanSerializer)
        def get_rating(self, result) -> dict:
            mean = result.rating_mean
            return {"mean": round(mean, 2) if mean is not None else None, "count": result.rating_count}

    @extend_schema(operation_id="reviews_queue_list", parameters=[FilterSerializer],
                   responses={200: OutputSerializer(many=True), 400: ValidationErrorSerializer})
    def get(self, request):
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        values = query.validated_data
        filters = {"team_id": values.get("team"), "search_id": values.get("search"), "tag": values.get("tag"),
                   "status": values.get("status")}
        results = review_queue_for_user(user=request.user, **filters)
        paginator = self.pagination_class()
        paginator.known_count = review_queue_count(user=request.user, **filters)
        page = review_queue_tags(results=list(paginator.paginate_queryset(results, request, view=self) or []))
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class CompareTransferSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    dataset = serializers.CharField()
    preset = serializers.CharField()
    best_val_acc = serializers.FloatField(allow_null=True)
    test_acc = serializers.FloatField(allow_null=True)
    params = serializers.IntegerField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "ReviewCompareTransfer"


class CompareCommentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    author = serializers.CharField()
    created_at = serializers.DateTimeField()
    html = serializers.CharField(help_text="The Markdown body rendered and sanitised.")

    class Meta:
        ref_name = "ReviewCompareComment"


class CompareEpochSerializer(serializers.Serializer):
    epoch = serializers.IntegerField(allow_null=True)
    val_acc = serializers.FloatField(allow_null=True)

    class Meta:
        ref_name = "ReviewCompareEpoch"


class CompareCellSerializer(serializers.Serializer):
    cell = serializers.IntegerField(source="cell.pk")
    cell_hash = serializers.CharField(source="cell.cell_hash")
    diagram_url = serializers.SerializerMethodField()
    review_url = serializers.SerializerMethodField()
    dataset = serializers.CharField(source="result.dataset")
    best_reward = serializers.FloatField(source="result.best_reward")
    best_trial = serializers.IntegerField(source="trial.pk")
    search = serializers.IntegerField(source="search.pk")
    val_acc = serializers.FloatField(allow_null=True)
    epochs = CompareEpochSerializer(many=True, source="curve")
    params = serializers.IntegerField(allow_null=True)
    mult_adds = serializers.IntegerField(allow_null=True)
    status = serializers.ChoiceField(choices=ReviewStatus.Status.choices)
    rating = RatingMeanSerializer()
    tags = serializers.ListField(child=serializers.CharField())
    comments = CompareCommentSerializer(many=True, help_text="The most recent, newest first.")
    transfers = CompareTransferSerializer(many=True, help_text="Finished transfers of the cell in the team, "
                                                                 "best test accuracy first.")

    class Meta:
        ref_name = "ReviewCompareCell"

    def get_diagram_url(self, cell) -> str:
        return reverse("api:cell-diagram", kwargs={"cell_id": cell["cell"].pk})

    def get_review_url(self, cell) -> str:
        return f"{reverse('reviews:detail', kwargs={'cell_hash': cell['cell'].cell_hash})}?team={cell['result'].team_id}"


class CompareSerializer(serializers.Serializer):
    team = serializers.IntegerField(source="team.pk")
    team_name = serializers.CharField(source="team.name")
    cells = CompareCellSerializer(many=True)

    class Meta:
        ref_name = "ReviewCompare"


class ReviewCompareApi(APIView):
    """2–4 cells of one team side by side. A cell the team has not trained (another team's) is a
    404; fewer than 2 or more than 4 cells a 400."""

    class FilterSerializer(serializers.Serializer):
        cells = serializers.CharField(help_text="2 to 4 cell hashes, comma-separated.")
        team = serializers.IntegerField(required=False)

        class Meta:
            ref_name = "ReviewCompareQuery"

    @extend_schema(operation_id="reviews_compare_retrieve", parameters=[FilterSerializer],
                   responses={200: CompareSerializer, 400: ValidationErrorSerializer, 404: ErrorSerializer})
    def get(self, request):
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        hashes = parse_cell_hashes(query.validated_data["cells"])
        comparison = review_compare_for_user(user=request.user, cell_hashes=hashes,
                                             team_id=query.validated_data.get("team"))
        for cell in comparison["cells"]:
            cell["curve"] = [{"epoch": e.get("epoch"), "val_acc": e.get("val_acc")} for e in cell["epochs"]]
        return Response(CompareSerializer(comparison).data)
