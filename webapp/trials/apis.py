"""REST API for trials: a search's trials page by page, one trial in full, its checkpoint."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.api.errors import ErrorSerializer, ValidationErrorSerializer
from webapp.api.pagination import get_paginated_response
from webapp.api.views import FileDownloadApi
from webapp.searches.selectors import search_get_for_user
from webapp.trials.downloads import checkpoint_response
from webapp.trials.models import Trial
from webapp.trials.selectors import trial_get_for_user, trial_has_checkpoint, trial_list_for_search, trial_network_widths

TRIAL_SUMMARY_FIELDS = ("id", "index", "status", "reward", "val_acc", "params", "mult_adds", "cell_hash", "cell",
                        "reused_from", "worker", "attempts", "epochs_done", "error", "created_at", "started_at",
                        "finished_at", "seconds")


class _TrialSummarySerializer(serializers.ModelSerializer):
    epochs_done = serializers.SerializerMethodField(help_text="Epochs trained so far.")
    seconds = serializers.FloatField(read_only=True, allow_null=True, help_text="Training time, once finished.")

    def get_epochs_done(self, trial: Trial) -> int:
        return len(trial.epochs)


class SearchTrialListApi(APIView):
    """A search's trials in sampling order, a cursor page at a time. A live page polls with
    `?after=<last index seen>` to fetch only the trials sampled since."""

    class Pagination(CursorPagination):
        ordering = "index"
        page_size = 50
        page_size_query_param = "limit"
        max_page_size = 500

    pagination_class = Pagination

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Trial.Status.choices, required=False)
        after = serializers.IntegerField(required=False, help_text="Only trials with a larger index.")

        class Meta:
            ref_name = "TrialListQuery"

    class OutputSerializer(_TrialSummarySerializer):
        class Meta:
            model = Trial
            ref_name = "TrialListItem"
            fields = TRIAL_SUMMARY_FIELDS

    @extend_schema(operation_id="searches_trials_list", parameters=[FilterSerializer],
                   responses={200: OutputSerializer(many=True), 400: ValidationErrorSerializer, 404: ErrorSerializer})
    def get(self, request, search_id: int):
        search = search_get_for_user(user=request.user, search_id=search_id)
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        # The selector defers the JSON columns; the epoch count needs `epochs` (a few KB), not the genotype.
        trials = trial_list_for_search(search=search, **query.validated_data).defer(None).defer("genotype")
        return get_paginated_response(pagination_class=self.pagination_class, serializer_class=self.OutputSerializer,
                                      queryset=trials, request=request, view=self)


class TrialNetworkSerializer(serializers.Serializer):
    filters = serializers.IntegerField(help_text="F: the penultimate layer's filters, 4 × concat_states × base_filters.")
    base_filters = serializers.IntegerField(
        help_text="Filters per state in the first stack (slim's num_conv_filters, DARTS's C), fixed by the proxy.")
    concat_states = serializers.IntegerField(help_text="States the normal cell concatenates.")

    class Meta:
        ref_name = "TrialNetwork"


class TrialDetailApi(APIView):
    class OutputSerializer(_TrialSummarySerializer):
        search = serializers.PrimaryKeyRelatedField(read_only=True)
        genotype = serializers.JSONField(help_text="The versioned genotype JSON the strategy proposed.")
        epochs = serializers.ListField(child=serializers.DictField(), help_text="Per-epoch metrics, in order.")
        checkpoint_url = serializers.SerializerMethodField()
        network = serializers.SerializerMethodField(
            help_text="The width of the network the trial trains; null outside the cell space.")

        class Meta:
            model = Trial
            ref_name = "TrialDetail"
            fields = ("search", *TRIAL_SUMMARY_FIELDS, "heartbeat_at", "genotype", "epochs", "network",
                      "checkpoint_url")

        @extend_schema_field(TrialNetworkSerializer(allow_null=True))
        def get_network(self, trial: Trial) -> dict | None:
            widths = trial_network_widths(trial=trial)
            return None if widths is None else TrialNetworkSerializer(widths).data

        def get_checkpoint_url(self, trial: Trial) -> str | None:
            if not trial_has_checkpoint(trial):
                return None
            return reverse("api:trial-checkpoint", kwargs={"trial_id": trial.pk})

    @extend_schema(operation_id="trials_retrieve", responses={200: OutputSerializer, 404: ErrorSerializer})
    def get(self, request, trial_id: int):
        return Response(self.OutputSerializer(trial_get_for_user(user=request.user, trial_id=trial_id)).data)


class TrialCheckpointApi(FileDownloadApi):
    @extend_schema(operation_id="trials_checkpoint_retrieve",
                   responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 404: ErrorSerializer},
                   description="The trial's saved weights (searches that keep checkpoints); 404 when it has none.")
    def get(self, request, trial_id: int):
        return checkpoint_response(trial_get_for_user(user=request.user, trial_id=trial_id))
