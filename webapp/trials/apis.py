"""REST API for trials: one trial in full, its checkpoint (a search's trials are the searches API's)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.api.errors import ErrorSerializer
from webapp.api.views import FileDownloadApi
from webapp.trials.downloads import checkpoint_response
from webapp.trials.models import Trial
from webapp.trials.selectors import trial_get_for_user, trial_has_checkpoint, trial_network_widths
from webapp.trials.serializers import TRIAL_SUMMARY_FIELDS, TrialSummarySerializer


class TrialNetworkSerializer(serializers.Serializer):
    filters = serializers.IntegerField(help_text="F: the penultimate layer's filters, 4 × concat_states × base_filters.")
    base_filters = serializers.IntegerField(
        help_text="Filters per state in the first stack (slim's num_conv_filters, DARTS's C), fixed by the proxy.")
    concat_states = serializers.IntegerField(help_text="States the normal cell concatenates.")

    class Meta:
        ref_name = "TrialNetwork"


class TrialDetailApi(APIView):
    class OutputSerializer(TrialSummarySerializer):
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
