"""The REST API under /api/ (names in the `api` namespace, e.g. `api:search-detail`).

Session and token auth (`Authorization: Token <key>`; `manage.py drf_create_token USER`);
the OpenAPI schema is at /api/schema/ and Swagger UI at /api/docs/.
"""

from django.urls import path

from webapp.cells.apis import CellDiagramApi, CellGenotypeJsonApi, CellGenotypeTextApi, CellListApi
from webapp.reviews.apis import (
    ActivityListApi,
    ReviewActivityApi,
    ReviewApi,
    ReviewCommentListApi,
    ReviewCompareApi,
    ReviewQueueApi,
    ReviewRatingApi,
    ReviewStatusApi,
    ReviewTagDetailApi,
    ReviewTagListApi,
)
from webapp.searches.apis import (
    CompareApi,
    SearchActivityApi,
    SearchCancelApi,
    SearchDetailApi,
    SearchEnqueueApi,
    SearchForkApi,
    SearchListApi,
    SearchPauseApi,
    SearchResumeApi,
    SearchSeedsApi,
    SearchTrialListApi,
    TrialCancelApi,
)
from webapp.teams.apis import TeamDetailApi, TeamInviteListApi, TeamListApi, TeamMemberDetailApi, TeamMemberListApi
from webapp.transfers.apis import (
    TransferCancelApi,
    TransferDetailApi,
    TransferFileApi,
    TransferListApi,
    TransferPauseApi,
    TransferPresetListApi,
    TransferResumeApi,
)
from webapp.trials.apis import TrialCheckpointApi, TrialDetailApi
from webapp.workers.apis import WorkerListApi

app_name = "api"

urlpatterns = [
    path("searches/", SearchListApi.as_view(), name="search-list"),
    path("searches/<int:search_id>/", SearchDetailApi.as_view(), name="search-detail"),
    path("searches/<int:search_id>/pause/", SearchPauseApi.as_view(), name="search-pause"),
    path("searches/<int:search_id>/resume/", SearchResumeApi.as_view(), name="search-resume"),
    path("searches/<int:search_id>/cancel/", SearchCancelApi.as_view(), name="search-cancel"),
    path("searches/<int:search_id>/enqueue/", SearchEnqueueApi.as_view(), name="search-enqueue"),
    path("searches/<int:search_id>/fork/", SearchForkApi.as_view(), name="search-fork"),
    path("searches/<int:search_id>/seeds/", SearchSeedsApi.as_view(), name="search-seeds"),
    path("searches/<int:search_id>/activity/", SearchActivityApi.as_view(), name="search-activity"),
    path("searches/<int:search_id>/trials/", SearchTrialListApi.as_view(), name="search-trials"),
    path("trials/<int:trial_id>/", TrialDetailApi.as_view(), name="trial-detail"),
    path("trials/<int:trial_id>/checkpoint", TrialCheckpointApi.as_view(), name="trial-checkpoint"),
    path("trials/<int:trial_id>/cancel/", TrialCancelApi.as_view(), name="trial-cancel"),
    path("cells/", CellListApi.as_view(), name="cell-list"),
    path("cells/<int:cell_id>/diagram.svg", CellDiagramApi.as_view(), name="cell-diagram"),
    path("cells/<int:cell_id>/genotype.json", CellGenotypeJsonApi.as_view(), name="cell-genotype-json"),
    path("cells/<int:cell_id>/genotype.txt", CellGenotypeTextApi.as_view(), name="cell-genotype-text"),
    path("cells/<int:cell_id>/review/", ReviewApi.as_view(), name="review-detail"),
    path("cells/<int:cell_id>/review/comments/", ReviewCommentListApi.as_view(), name="review-comments"),
    path("cells/<int:cell_id>/review/rating/", ReviewRatingApi.as_view(), name="review-rating"),
    path("cells/<int:cell_id>/review/tags/", ReviewTagListApi.as_view(), name="review-tags"),
    path("cells/<int:cell_id>/review/tags/<str:name>/", ReviewTagDetailApi.as_view(), name="review-tag"),
    path("cells/<int:cell_id>/review/status/", ReviewStatusApi.as_view(), name="review-status"),
    path("cells/<int:cell_id>/review/activity/", ReviewActivityApi.as_view(), name="review-activity"),
    path("reviews/activity/", ActivityListApi.as_view(), name="review-activity-list"),
    path("reviews/queue/", ReviewQueueApi.as_view(), name="review-queue"),
    path("reviews/compare/", ReviewCompareApi.as_view(), name="review-compare"),
    path("compare/", CompareApi.as_view(), name="compare"),
    path("teams/", TeamListApi.as_view(), name="team-list"),
    path("teams/<int:team_id>/", TeamDetailApi.as_view(), name="team-detail"),
    path("teams/<int:team_id>/members/", TeamMemberListApi.as_view(), name="team-members"),
    path("teams/<int:team_id>/members/<int:user_id>/", TeamMemberDetailApi.as_view(), name="team-member"),
    path("teams/<int:team_id>/invites/", TeamInviteListApi.as_view(), name="team-invites"),
    path("transfers/", TransferListApi.as_view(), name="transfer-list"),
    path("transfers/presets/", TransferPresetListApi.as_view(), name="transfer-presets"),
    path("transfers/<int:transfer_id>/", TransferDetailApi.as_view(), name="transfer-detail"),
    path("transfers/<int:transfer_id>/pause/", TransferPauseApi.as_view(), name="transfer-pause"),
    path("transfers/<int:transfer_id>/resume/", TransferResumeApi.as_view(), name="transfer-resume"),
    path("transfers/<int:transfer_id>/cancel/", TransferCancelApi.as_view(), name="transfer-cancel"),
    path("transfers/<int:transfer_id>/files/<str:kind>", TransferFileApi.as_view(), name="transfer-file"),
    path("workers/", WorkerListApi.as_view(), name="worker-list"),
]
