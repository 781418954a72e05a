"""REST API for workers: every worker, with its status; its current trial or transfer only
when it is one of the user's teams' (null otherwise, with `other_team` true)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from webapp.api.pagination import LimitOffsetPagination
from webapp.workers.selectors import WORKER_STATUSES, worker_list, worker_rows_for_user


class WorkerSerializer(serializers.Serializer):
    name = serializers.CharField(source="worker.name", help_text="The Celery node name.")
    label = serializers.CharField(source="worker.label",
                                  help_text="host/worker: how the pages name it, the same across its restarts.")
    host = serializers.CharField(source="worker.host")
    queues = serializers.CharField(source="worker.queues")
    gpu_name = serializers.CharField(source="worker.gpu_name", help_text='"" on a CPU worker.')
    gpu_memory_mb = serializers.IntegerField(source="worker.gpu_memory_mb", allow_null=True)
    status = serializers.ChoiceField(choices=WORKER_STATUSES,
                                     help_text="lost: no heartbeat for CELLSEARCH_HEARTBEAT_TIMEOUT seconds; "
                                               "stopped: shut down; busy: on a trial, a transfer or a supernet; else idle.")
    heartbeat_at = serializers.DateTimeField(source="worker.heartbeat_at")
    heartbeat_age_seconds = serializers.FloatField(source="heartbeat_age")
    started_at = serializers.DateTimeField(source="worker.started_at")
    trials_done = serializers.IntegerField(source="worker.trials_done")
    current_trial = serializers.SerializerMethodField(help_text="Your teams' trial it trains, else null.")
    current_transfer = serializers.SerializerMethodField(help_text="Your teams' transfer it trains, else null.")
    current_oneshot_search = serializers.SerializerMethodField(
        help_text="Your teams' one-shot search whose supernet it trains, else null.")
    other_team = serializers.BooleanField(help_text="It is on another team's trial, transfer or supernet.")

    class Meta:
        ref_name = "Worker"

    def get_current_trial(self, row) -> int | None:
        return row.trial.pk if row.trial is not None else None

    def get_current_transfer(self, row) -> int | None:
        return row.transfer.pk if row.transfer is not None else None

    def get_current_oneshot_search(self, row) -> int | None:
        return row.oneshot.search_id if row.oneshot is not None else None


class WorkerListApi(APIView):
    """Every worker (shared by all teams), by host and name."""

    pagination_class = LimitOffsetPagination

    @extend_schema(operation_id="workers_list", responses=WorkerSerializer(many=True))
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(worker_list(), request, view=self)
        rows = worker_rows_for_user(user=request.user, workers=page)
        return paginator.get_paginated_response(WorkerSerializer(rows, many=True).data)
