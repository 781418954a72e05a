"""REST API for transfers: list, launch (from a cell hash or a trial), read, pause/resume/cancel,
the presets, and the files to take home.

One view per operation with its serializers nested inside it; reads go through the selectors
(scoped to the user's teams, so another team's transfer, trial or cell is a 404) and writes
through the services, whose refusals (a TransferConfig error names its field) the API's
exception handler answers as 400 `{field: [reasons]}`.
"""

from __future__ import annotations

import dataclasses
import json

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.api.errors import ErrorSerializer, ValidationErrorSerializer
from webapp.api.pagination import LimitOffsetPagination, get_paginated_response
from webapp.api.views import FileDownloadApi
from webapp.teams.permissions import require_perm
from webapp.transfers import services
from webapp.transfers.downloads import transfer_file_response
from webapp.transfers.models import Transfer
from webapp.transfers.selectors import (
    TRANSFER_FILES,
    transfer_decision_team_id,
    transfer_downloads,
    transfer_get_for_user,
    transfer_list_for_user,
    transfer_network,
    transfer_progress,
    transfer_source_get_for_user,
)
from webapp.transfers.services.lifecycle import NOT_SETTABLE

# -- output shapes ------------------------------------------------------------------------------


class TransferProgressSerializer(serializers.Serializer):
    epochs_done = serializers.IntegerField()
    epochs_total = serializers.IntegerField(allow_null=True)
    percent = serializers.IntegerField()
    images_per_second = serializers.FloatField(allow_null=True, help_text="The last epoch's training throughput.")
    eta_seconds = serializers.FloatField(allow_null=True,
                                         help_text="Median epoch seconds × epochs left; null before the first "
                                                   "epoch and once ended.")
    best_val_acc = serializers.FloatField(allow_null=True)

    class Meta:
        ref_name = "TransferProgress"


class TransferNetworkSerializer(serializers.Serializer):
    cells = serializers.IntegerField(help_text="N: normal cells per stack.")
    filters = serializers.IntegerField(help_text="F: the penultimate layer's filters.")
    base_filters = serializers.IntegerField()
    concat_states = serializers.IntegerField(help_text="States the normal cell concatenates.")

    class Meta:
        ref_name = "TransferNetwork"


TRANSFER_SUMMARY_FIELDS = ("id", "name", "team", "owner", "status", "pause_requested", "cell", "cell_hash",
                           "source_trial", "source_search", "preset", "dataset", "config", "best_val_acc",
                           "final_val_acc", "test_acc", "params", "mult_adds", "worker", "device", "attempts",
                           "gpu_seconds", "error", "created_at", "started_at", "finished_at", "updated_at")


class TransferSummarySerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.name", read_only=True)
    owner = serializers.CharField(source="owner.get_username", read_only=True)
    config = serializers.JSONField(help_text="The TransferConfig settings, less the dataset and the data root.")

    class Meta:
        model = Transfer
        ref_name = "TransferListItem"
        fields = TRANSFER_SUMMARY_FIELDS


class TransferDetailSerializer(TransferSummarySerializer):
    genotype = serializers.JSONField(help_text="The versioned genotype JSON trained.")
    epochs = serializers.ListField(child=serializers.DictField(), help_text="Per-epoch metrics, in order.")
    exports = serializers.DictField(help_text="Per export format, its check: file, max_abs_diff, ok, batch.")
    progress = serializers.SerializerMethodField()
    network = serializers.SerializerMethodField(help_text="N@F of the network; null when it cannot be read.")
    files = serializers.SerializerMethodField(help_text="Download URL of each file the transfer has now.")
    decision = serializers.IntegerField(source="decision_id", read_only=True, allow_null=True,
                                        help_text="The review decision (approving activity row) it was launched "
                                                  "from; null when none.")

    class Meta:
        model = Transfer
        ref_name = "TransferDetail"
        fields = (*TRANSFER_SUMMARY_FIELDS, "heartbeat_at", "checkpoint_epoch", "train_seconds", "genotype",
                  "epochs", "exports", "model_card", "progress", "network", "files", "decision")

    @extend_schema_field(TransferProgressSerializer)
    def get_progress(self, transfer: Transfer) -> dict:
        return transfer_progress(transfer=transfer)

    @extend_schema_field(TransferNetworkSerializer(allow_null=True))
    def get_network(self, transfer: Transfer) -> dict | None:
        return transfer_network(transfer=transfer)

    @extend_schema_field(serializers.DictField(child=serializers.CharField()))
    def get_files(self, transfer: Transfer) -> dict[str, str]:
        return {kind: reverse("api:transfer-file", kwargs={"transfer_id": transfer.pk, "kind": kind})
                for kind in transfer_downloads(transfer=transfer)}


def transfer_detail_response(transfer: Transfer, *, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(TransferDetailSerializer(transfer).data, status=status_code)


# -- the settings, one optional field per TransferConfig field -----------------------------------

_FIELD_TYPES = {
    "int": serializers.IntegerField,
    "float": serializers.FloatField,
    "bool": serializers.BooleanField,
    "str": serializers.CharField,
}


def _config_field(field: dataclasses.Field) -> serializers.Field:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    default = field.default if field.default is not dataclasses.MISSING else (
        field.default_factory() if field.default_factory is not dataclasses.MISSING else None)
    help_text = f"Default {json.dumps(default, default=str)} (or the preset's)."
    if kind in _FIELD_TYPES:
        return _FIELD_TYPES[kind](required=False, help_text=help_text)
    optional = kind.replace(" ", "").removesuffix("|None")
    if optional in _FIELD_TYPES:
        return _FIELD_TYPES[optional](required=False, allow_null=True, help_text=help_text)
    if kind.startswith(("dict", "Mapping")):
        return serializers.DictField(required=False, help_text=help_text)
    return serializers.JSONField(required=False, help_text=help_text)


class TransferCreateSerializer(serializers.Serializer):
    """Which cell (a cell hash of the team's, or one of its trials) and how to train it: a preset,
    then any TransferConfig setting (less data_root, which the server sets)."""

    class Meta:
        ref_name = "TransferCreate"

    def get_fields(self):
        from searchcore.transfer import TRANSFER_PRESETS

        fields: dict[str, serializers.Field] = {
            "cell_hash": serializers.CharField(required=False, help_text="The cell's canonical hash."),
            "trial": serializers.IntegerField(required=False, help_text="Or the id of a trial whose cell to train."),
            "decision": serializers.IntegerField(
                required=False, allow_null=True,
                help_text="The review decision it is launched from: the id of the activity row that approved the "
                          "cell (GET /api/cells/{id}/review/'s `decision`). The source is then that team's trial."),
            "name": serializers.CharField(required=False, allow_blank=True, max_length=200, default=""),
            "preset": serializers.ChoiceField(choices=list(TRANSFER_PRESETS.names()), required=False,
                                              allow_null=True, help_text="Settings to start from."),
        }
        for field in services.transfer_settable_fields():
            fields[field.name] = _config_field(field)
        return fields

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise ValidationError({key: [NOT_SETTABLE.get(key, "unknown setting")]
                                       for key in unknown})
        values = super().to_internal_value(data)
        if ("cell_hash" in values) == ("trial" in values):
            raise ValidationError({"cell_hash": ["give the cell_hash or the trial, one of the two"]})
        return values


# -- operations ----------------------------------------------------------------------------------


class TransferListApi(APIView):
    """The transfers of the user's teams, newest first; POST launches one."""

    pagination_class = LimitOffsetPagination

    @extend_schema(operation_id="transfers_list", responses=TransferSummarySerializer(many=True))
    def get(self, request):
        return get_paginated_response(pagination_class=self.pagination_class,
                                      serializer_class=TransferSummarySerializer,
                                      queryset=transfer_list_for_user(user=request.user), request=request, view=self)

    @extend_schema(operation_id="transfers_create", request=TransferCreateSerializer,
                   responses={201: TransferDetailSerializer, 400: ValidationErrorSerializer, 403: ErrorSerializer,
                              404: ErrorSerializer})
    def post(self, request):
        serializer = TransferCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = dict(serializer.validated_data)
        decision = values.pop("decision", None)
        team_id = None
        if decision is not None:
            team_id = transfer_decision_team_id(user=request.user, decision_id=decision)
            if team_id is None:
                raise ValidationError({"decision": [f"no review decision of your teams has id {decision}"]})
        source = transfer_source_get_for_user(user=request.user, cell_hash=values.pop("cell_hash", None),
                                              trial_id=values.pop("trial", None), team_id=team_id)
        require_perm(request.user, "transfers.launch", source.search)
        transfer = services.transfer_create(user=request.user, source_trial=source, decision=decision,
                                            name=values.pop("name", ""),
                                            preset=values.pop("preset", None), dataset=values.pop("dataset", None),
                                            overrides=values)
        return transfer_detail_response(transfer, status_code=status.HTTP_201_CREATED)


class TransferPresetListApi(APIView):
    """The named settings a transfer may start from (`preset`), each a TransferConfig in full."""

    @extend_schema(operation_id="transfers_presets_list",
                   responses={(200, "application/json"): OpenApiTypes.OBJECT},
                   description="Preset name to its settings, every TransferConfig field filled in.")
    def get(self, request):
        from searchcore.transfer import TRANSFER_PRESETS, transfer_config

        return Response({name: transfer_config(name).to_dict() for name in TRANSFER_PRESETS.names()})


class TransferDetailApi(APIView):
    @extend_schema(operation_id="transfers_retrieve", responses={200: TransferDetailSerializer, 404: ErrorSerializer})
    def get(self, request, transfer_id: int):
        return transfer_detail_response(transfer_get_for_user(user=request.user, transfer_id=transfer_id))


class _TransferActionApi(APIView):
    """POST moves the transfer to another state; 400 when it cannot from where it is."""

    service = None

    def post(self, request, transfer_id: int):
        transfer = transfer_get_for_user(user=request.user, transfer_id=transfer_id)
        require_perm(request.user, "transfers.steer", transfer)
        type(self).service(transfer=transfer)
        return transfer_detail_response(transfer_get_for_user(user=request.user, transfer_id=transfer_id))


_ACTION_RESPONSES = {200: TransferDetailSerializer, 400: ValidationErrorSerializer, 403: ErrorSerializer,
                     404: ErrorSerializer}


@extend_schema_view(post=extend_schema(
    operation_id="transfers_pause", request=None, responses=_ACTION_RESPONSES,
    description="A queued transfer pauses at once; a running one after its current epoch, keeping its checkpoint."))
class TransferPauseApi(_TransferActionApi):
    service = staticmethod(services.transfer_pause)


@extend_schema_view(post=extend_schema(
    operation_id="transfers_resume", request=None, responses=_ACTION_RESPONSES,
    description="Queue a paused transfer again; it trains on from its last checkpoint."))
class TransferResumeApi(_TransferActionApi):
    service = staticmethod(services.transfer_resume)


@extend_schema_view(post=extend_schema(
    operation_id="transfers_cancel", request=None, responses=_ACTION_RESPONSES,
    description="End the transfer for good; a running training is stopped. Its checkpoints stay."))
class TransferCancelApi(_TransferActionApi):
    service = staticmethod(services.transfer_cancel)


class TransferFileApi(FileDownloadApi):
    @extend_schema(
        operation_id="transfers_file_retrieve",
        parameters=[OpenApiParameter("kind", str, OpenApiParameter.PATH, enum=list(TRANSFER_FILES),
                                     description="best, last: checkpoints (torch.load(weights_only=True)); onnx, "
                                                 "torchscript: the exported model; genotype: its JSON; card.md, "
                                                 "card.json: the model card.")],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 404: ErrorSerializer},
        description="One of the transfer's files as an attachment; 404 while it has none.")
    def get(self, request, transfer_id: int, kind: str):
        return transfer_file_response(transfer_get_for_user(user=request.user, transfer_id=transfer_id), kind)
