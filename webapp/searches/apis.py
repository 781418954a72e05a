"""REST API for searches: list, create, read, steer (PATCH parallelism and budget), fork, activity,
pause/resume/cancel, enqueue a cell by hand, their trials (cancelling one), and the Figure 6 comparison.

One view per operation with its serializers nested inside it; reads go through the
selectors (scoped to the user's teams, so another team's search is a 404) and writes
through the services, whose refusals the API's exception handler answers as 400s.
"""

from __future__ import annotations

import dataclasses
import json

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from searchcore.compare import DEFAULT_TOP_K, MAX_TOP_K, parse_int_list, parse_top_k
from searchcore.data import DATASETS
from searchcore.errors import ConfigError
from searchcore.oneshot import SAMPLERS, SEARCH_OPTIONS
from searchcore.proxy import ProxyConfig
from searchcore.spaces import SPACES
from searchcore.strategies import STRATEGIES
from webapp.api.errors import ErrorSerializer, ValidationErrorSerializer
from webapp.api.pagination import LimitOffsetPagination, get_paginated_response
from webapp.searches import services
from webapp.searches.models import OneShotRun, Search
from webapp.searches.selectors import (
    compare_curves,
    search_activity,
    search_cost,
    search_get_for_user,
    search_list_for_user,
    search_oneshot_run,
    search_progress,
    search_workers,
    searches_comparable,
    searches_for_compare,
)
from webapp.teams.permissions import require_perm
from webapp.trials.models import Trial
from webapp.trials.selectors import trial_get_for_user, trial_list_for_search
from webapp.trials.serializers import TRIAL_SUMMARY_FIELDS, TrialSummarySerializer

#: What a write on one search answers when it refuses: bad input, a role that may not, another team's.
_REFUSALS = {400: ValidationErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}

# -- output shapes shared by several search operations ----------------------------------------


class SearchProgressSerializer(serializers.Serializer):
    budget = serializers.IntegerField()
    done = serializers.IntegerField(help_text="Trials finished or failed.")
    failed = serializers.IntegerField()
    running = serializers.IntegerField()
    pending = serializers.IntegerField()
    percent = serializers.IntegerField()
    best_reward = serializers.FloatField(allow_null=True)

    class Meta:
        ref_name = "SearchProgress"


class SearchWorkerSerializer(serializers.Serializer):
    worker = serializers.CharField(help_text="The process holding the trial's claim, host:pid.")
    worker_label = serializers.CharField(help_text="host/worker, the same across the worker's restarts.")
    trial_index = serializers.IntegerField()
    trial_id = serializers.IntegerField()
    heartbeat_at = serializers.DateTimeField(allow_null=True, help_text="Its training's last progress.")
    started_at = serializers.DateTimeField(allow_null=True, help_text="When this attempt began.")
    attempt = serializers.IntegerField(help_text="The attempt it trains (more than 1 after a lost one).")
    epochs_done = serializers.IntegerField()

    class Meta:
        ref_name = "SearchWorker"


class SearchCostEstimateSerializer(serializers.Serializer):
    seconds = serializers.FloatField(allow_null=True, help_text="Wall-clock seconds to finish the budget.")
    gpu_hours = serializers.FloatField(allow_null=True, help_text="GPU-hours the remaining trials will take.")

    class Meta:
        ref_name = "SearchCostEstimate"


class SearchCostSerializer(serializers.Serializer):
    """GPU-hours are device-hours: wall-clock hours × devices (one per trial); on a CPU worker
    they are its wall-clock hours, and `devices` says "cpu"."""

    gpu_hours = serializers.FloatField(help_text="Spent: every attempt of every trial, lost ones and running ones "
                                                 "included.")
    trials_per_gpu_hour = serializers.FloatField(allow_null=True, help_text=(
        "Finished-or-failed trials per GPU-hour recorded on them; null before any."))
    trials_done = serializers.IntegerField()
    remaining = serializers.IntegerField(help_text="Trials of the budget not yet finished or failed.")
    devices = serializers.ListField(child=serializers.CharField(), help_text="What its trials trained on.")
    estimate = SearchCostEstimateSerializer(help_text=(
        "To finish the budget at the rate of the last 20 done trials; nulls before 2 are done, or once it ended."))

    class Meta:
        ref_name = "SearchCost"


SEARCH_CONFIG_FIELDS = ("space", "space_options", "strategy", "strategy_options", "dataset", "proxy", "budget",
                        "parallelism", "seed", "keep_checkpoints")
SEARCH_STATE_FIELDS = ("status", "trials_issued", "error", "created_at", "started_at", "finished_at", "updated_at",
                       "forked_from", "forked_trials")


class OneShotRunSerializer(serializers.ModelSerializer):
    """A one-shot search's supernet phase: one long job on a gpu worker, resumed after a kill."""

    epochs_total = serializers.IntegerField(read_only=True, allow_null=True, help_text="Supernet epochs in all.")
    epochs = serializers.JSONField(help_text=(
        "One report per epoch: train_loss and train_acc on the sampled cells' paths, sampled_val_acc (the mean "
        "shared-weight accuracy of the cells the sampler was told), best_val_acc, lr, seconds, and leaders "
        "(the best cells told so far: cell_hash, genotype, val_acc)."))
    top = serializers.JSONField(help_text="Once finished: the best unique cells ranked on the whole validation split "
                                          "with the shared weights, best first; they become the search's trials.")
    final = serializers.JSONField(help_text="Once finished: every cell sampled for the ranking, in order.")

    class Meta:
        model = OneShotRun
        ref_name = "OneShotRun"
        fields = ("status", "pause_requested", "config", "epochs", "epochs_total", "checkpoint_epoch", "top", "final",
                  "gpu_seconds", "device", "worker", "attempts", "error", "heartbeat_at", "started_at", "finished_at")


class SearchDetailSerializer(serializers.ModelSerializer):
    """A search's config, state and progress: what every operation on one search returns."""

    team = serializers.CharField(source="team.name", read_only=True)
    owner = serializers.CharField(source="owner.get_username", read_only=True)
    progress = serializers.SerializerMethodField()
    workers = serializers.SerializerMethodField()
    cost = serializers.SerializerMethodField()
    oneshot = serializers.SerializerMethodField()

    class Meta:
        model = Search
        ref_name = "SearchDetail"
        fields = ("id", "name", "team", "owner", *SEARCH_CONFIG_FIELDS, *SEARCH_STATE_FIELDS, "progress", "workers",
                  "cost", "oneshot")

    @extend_schema_field(SearchProgressSerializer)
    def get_progress(self, search: Search) -> dict:
        return search_progress(search=search)

    @extend_schema_field(SearchWorkerSerializer(many=True))
    def get_workers(self, search: Search) -> list[dict]:
        return search_workers(search=search)

    @extend_schema_field(SearchCostSerializer)
    def get_cost(self, search: Search) -> dict:
        return search_cost(search=search)

    @extend_schema_field(OneShotRunSerializer(allow_null=True))
    def get_oneshot(self, search: Search) -> dict | None:
        """A one-shot search's supernet run, once its first control step started it; null otherwise."""
        run = search_oneshot_run(search=search)
        return None if run is None else OneShotRunSerializer(run).data


def search_detail_response(search: Search, *, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(SearchDetailSerializer(search).data, status=status_code)


# -- the proxy-training config, one optional field per ProxyConfig field -----------------------

_PROXY_FIELD_TYPES = {
    "int": serializers.IntegerField,
    "float": serializers.FloatField,
    "bool": serializers.BooleanField,
    "str": serializers.CharField,
}
#: Help for the fields whose default alone would not say what they mean.
_PROXY_HELP = {
    "filters": "F as NASNet-A's cell ends at, a multiple of 24: fixes every cell's base filters at F / 24. "
               "Default 96 when base_filters is not given; give one of the two.",
    "base_filters": "Instead of filters: every cell's base filters (slim's num_conv_filters, DARTS's C). The base "
                    "is fixed for every cell, so a cell whose normal cell concatenates k states ends at F = 4 k base.",
}
#: ProxyConfig fields a search's `proxy` may not set, and why.
_PROXY_NOT_SETTABLE = {
    "dataset": "set dataset on the search, not in proxy",
    "data_root": "is set by the server (CELLSEARCH_DATA_ROOT), not per search",
}


def _proxy_field(field: dataclasses.Field) -> serializers.Field:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    help_text = _PROXY_HELP.get(field.name, f"Default {json.dumps(default)}.")
    if kind in _PROXY_FIELD_TYPES:
        return _PROXY_FIELD_TYPES[kind](required=False, help_text=help_text)
    optional = kind.replace(" ", "").removesuffix("|None")
    if optional in _PROXY_FIELD_TYPES:
        return _PROXY_FIELD_TYPES[optional](required=False, allow_null=True, help_text=help_text)
    if kind.startswith("dict"):
        return serializers.DictField(required=False, help_text=help_text)
    return serializers.JSONField(required=False, help_text=help_text)


class ProxyInputSerializer(serializers.Serializer):
    """How each proposed cell is trained for its reward; omitted settings keep their defaults.
    The fields mirror `searchcore.proxy.ProxyConfig`, less `dataset` (set on the search) and
    `data_root` (set by the server)."""

    class Meta:
        ref_name = "ProxyConfig"

    def get_fields(self):
        return {f.name: _proxy_field(f) for f in dataclasses.fields(ProxyConfig) if f.name not in _PROXY_NOT_SETTABLE}

    def to_internal_value(self, data):
        if isinstance(data, dict):
            known = set(self.fields)
            unknown = sorted(set(data) - known)
            if unknown:
                raise ValidationError({
                    key: [_PROXY_NOT_SETTABLE.get(key, f"unknown proxy setting; known: {', '.join(sorted(known))}")]
                    for key in unknown
                })
        return super().to_internal_value(data)


# -- operations ----------------------------------------------------------------------------------


class SearchListApi(APIView):
    """The searches of the user's teams, newest first; POST launches a new one."""

    pagination_class = LimitOffsetPagination

    class OutputSerializer(serializers.ModelSerializer):
        team = serializers.CharField(source="team.name", read_only=True)
        owner = serializers.CharField(source="owner.get_username", read_only=True)
        trials_done = serializers.IntegerField(read_only=True)
        trials_running = serializers.IntegerField(read_only=True)
        best_reward = serializers.FloatField(read_only=True, allow_null=True)

        class Meta:
            model = Search
            ref_name = "SearchListItem"
            fields = ("id", "name", "team", "owner", *SEARCH_CONFIG_FIELDS, *SEARCH_STATE_FIELDS,
                      "trials_done", "trials_running", "best_reward")

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
        space = serializers.CharField(default="nasnet", help_text=f"One of {', '.join(SPACES)}.")
        space_options = serializers.DictField(required=False, default=dict)
        strategy = serializers.CharField(default="ppo", help_text=(
            f"One of {', '.join(STRATEGIES)}; or a one-shot sampler, {' or '.join(SAMPLERS)}: a supernet ranks cells "
            f"with shared weights, then the best `budget` of them train as trials. A one-shot search's "
            f"strategy_options: {', '.join(SEARCH_OPTIONS)} (epochs: the supernet's)."))
        strategy_options = serializers.DictField(required=False, default=dict)
        dataset = serializers.CharField(default="digits", help_text=f"One of {', '.join(DATASETS)}.")
        budget = serializers.IntegerField(help_text="How many trials (cells sampled) in all.")
        parallelism = serializers.IntegerField(default=1, help_text="Trials training at the same time.")
        seed = serializers.IntegerField(default=0)
        proxy = ProxyInputSerializer(required=False, default=dict)
        keep_checkpoints = serializers.BooleanField(default=False)
        team = serializers.IntegerField(
            required=False, allow_null=True, default=None,
            help_text="The id of the team the search belongs to; required for a user in several teams "
                      "(default: the user's only team). Needs the searches.launch permission there.")

        class Meta:
            ref_name = "SearchCreate"

    @extend_schema(operation_id="searches_list", responses=OutputSerializer(many=True))
    def get(self, request):
        return get_paginated_response(pagination_class=self.pagination_class, serializer_class=self.OutputSerializer,
                                      queryset=search_list_for_user(user=request.user), request=request, view=self)

    @extend_schema(operation_id="searches_create", request=InputSerializer,
                   responses={201: SearchDetailSerializer, 400: ValidationErrorSerializer, 403: ErrorSerializer},
                   examples=[OpenApiExample(
                       "a small PPO search on digits", request_only=True,
                       summary="Launches as it stands (tests/webapp/test_new_search_form.py posts it)",
                       value={"name": "digits ppo", "space": "nasnet", "strategy": "ppo", "dataset": "digits",
                              "budget": 20, "parallelism": 2, "seed": 0,
                              "proxy": {"epochs": 3, "cells": 1, "filters": 48, "batch_size": 64}})])
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # the service picks the team (400 on `team`) and asks searches.launch there (403)
        search = services.search_create(user=request.user, **serializer.validated_data)
        return search_detail_response(search, status_code=status.HTTP_201_CREATED)


class SearchDetailApi(APIView):
    """GET reads a search; PATCH steers it (parallelism, budget)."""

    class SteerInputSerializer(serializers.Serializer):
        parallelism = serializers.IntegerField(
            required=False, help_text="Trials training at the same time; a lower value lets running trials finish.")
        budget = serializers.IntegerField(
            required=False, help_text="Trials in all, never below `trials_issued`; extending a finished search's "
                                      "budget runs it again.")

        class Meta:
            ref_name = "SearchSteer"

    @extend_schema(operation_id="searches_retrieve", responses={200: SearchDetailSerializer, 404: ErrorSerializer})
    def get(self, request, search_id: int):
        return search_detail_response(search_get_for_user(user=request.user, search_id=search_id))

    @extend_schema(operation_id="searches_partial_update", request=SteerInputSerializer,
                   responses={200: SearchDetailSerializer, **_REFUSALS},
                   description="Change a running, paused, queued or finished search's parallelism and budget; "
                               "each change is recorded in its activity.")
    def patch(self, request, search_id: int):
        search = search_get_for_user(user=request.user, search_id=search_id)
        require_perm(request.user, "searches.steer", search)
        serializer = self.SteerInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.search_steer(user=request.user, search=search, **serializer.validated_data)
        return search_detail_response(search_get_for_user(user=request.user, search_id=search_id))


class _SearchActionApi(APIView):
    """POST moves the search to another state; 400 when it cannot from where it is."""

    service = None

    def post(self, request, search_id: int):
        search = search_get_for_user(user=request.user, search_id=search_id)
        require_perm(request.user, "searches.steer", search)
        type(self).service(search=search, user=request.user)
        return search_detail_response(search_get_for_user(user=request.user, search_id=search_id))


_ACTION_RESPONSES = {200: SearchDetailSerializer, **_REFUSALS}


@extend_schema_view(post=extend_schema(operation_id="searches_pause", request=None, responses=_ACTION_RESPONSES,
                                     description="Stop issuing new trials; those in flight finish."))
class SearchPauseApi(_SearchActionApi):
    service = staticmethod(services.search_pause)


@extend_schema_view(post=extend_schema(operation_id="searches_resume", request=None, responses=_ACTION_RESPONSES,
                                     description="Issue trials again after a pause."))
class SearchResumeApi(_SearchActionApi):
    service = staticmethod(services.search_resume)


@extend_schema_view(post=extend_schema(operation_id="searches_cancel", request=None, responses=_ACTION_RESPONSES,
                                     description="End the search for good; running trials are stopped."))
class SearchCancelApi(_SearchActionApi):
    service = staticmethod(services.search_cancel)


class SearchEnqueueApi(APIView):
    """POST queues a cell given by hand: the search's next trial trains it."""

    class InputSerializer(serializers.Serializer):
        genotype = serializers.JSONField(
            required=False, help_text="The cell as a genotype JSON object (or its text; text that is not a JSON "
                                      "object is read as a DARTS string).")
        darts = serializers.CharField(required=False, trim_whitespace=True,
                                      help_text="The cell as a DARTS `Genotype(normal=..., reduce=...)` string.")
        cell_hash = serializers.CharField(required=False, trim_whitespace=True,
                                          help_text="A cell one of your teams has trained.")

        class Meta:
            ref_name = "SearchEnqueue"

        def validate(self, attrs):
            if len(attrs) != 1:
                raise ValidationError({"genotype": ["give exactly one of genotype, darts or cell_hash"]})
            return attrs

    class OutputSerializer(serializers.Serializer):
        cell_hash = serializers.CharField(help_text="The cell's canonical hash.")
        enqueued = serializers.IntegerField(help_text="Cells waiting to be handed to the strategy, this one included.")

        class Meta:
            ref_name = "SearchEnqueued"

    @extend_schema(operation_id="searches_enqueue", request=InputSerializer,
                   responses={202: OutputSerializer, **_REFUSALS},
                   description="Queue a cell given by hand (exactly one of genotype, darts, cell_hash): the "
                               "search's next trial trains it before anything its strategy draws. Only a "
                               "queued, running or paused search with budget left takes one. Recorded in the "
                               "search's activity.")
    def post(self, request, search_id: int):
        search = search_get_for_user(user=request.user, search_id=search_id)
        require_perm(request.user, "searches.steer", search)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.search_enqueue(user=request.user, search=search, **serializer.validated_data)
        return Response(self.OutputSerializer(result).data, status=status.HTTP_202_ACCEPTED)


def _launching_from(request, search_id: int, input_serializer) -> tuple[Search, dict]:
    """The search that new ones start from (404 outside the user's teams), once the user's role
    may launch searches in its team (403), and the body as `input_serializer` validates it (400)."""
    search = search_get_for_user(user=request.user, search_id=search_id)
    require_perm(request.user, "searches.launch", search.team)
    serializer = input_serializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return search, serializer.validated_data


class SearchForkApi(APIView):
    """POST forks the search from chosen trials: a new search whose strategy goes on from this one's."""

    class InputSerializer(serializers.Serializer):
        trials = serializers.ListField(
            child=serializers.IntegerField(), allow_empty=False,
            help_text="Indices of this search's finished trials whose cells the fork starts from: its first "
                      "trials (their results are copied), evolution's first population.")
        name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
        budget = serializers.IntegerField(required=False, help_text="Trials in all (default: the parent's).")
        parallelism = serializers.IntegerField(required=False, help_text="Default: the parent's.")
        seed = serializers.IntegerField(required=False, help_text="Default: the parent's plus one per fork.")
        strategy_options = serializers.DictField(
            required=False, help_text="Over the parent's; not the controller's hidden_size or num_layers.")

        class Meta:
            ref_name = "SearchFork"

    @extend_schema(operation_id="searches_fork", request=InputSerializer,
                   responses={201: SearchDetailSerializer, **_REFUSALS},
                   description="A new search of the same team, space, dataset and proxy config whose strategy "
                               "starts from this search's state (a controller keeps its policy; evolution's "
                               "population is seeded with the chosen cells). Recorded in both searches' "
                               "activity.")
    def post(self, request, search_id: int):
        search, data = _launching_from(request, search_id, self.InputSerializer)
        fork = services.search_fork(user=request.user, search=search, **data)
        return search_detail_response(search_get_for_user(user=request.user, search_id=fork.pk),
                                      status_code=status.HTTP_201_CREATED)


class SearchSeedsApi(APIView):
    """POST runs N seeds of each strategy with this search's settings, for Figure 6."""

    class InputSerializer(serializers.Serializer):
        strategies = serializers.ListField(child=serializers.CharField(), help_text="Strategies to compare.")
        seeds = serializers.IntegerField(help_text="N: seeds 0 to N−1 of each strategy.")

        class Meta:
            ref_name = "SearchSeeds"

    class OutputSerializer(serializers.Serializer):
        created = serializers.ListField(child=serializers.IntegerField(), help_text="Ids of the searches made.")
        existing = serializers.ListField(
            child=serializers.IntegerField(),
            help_text="Ids of the team's searches that already had a (strategy, seed) with these settings: skipped.")
        searches = serializers.ListField(child=serializers.IntegerField(),
                                         help_text="All of them, by strategy and seed: what to compare.")

        class Meta:
            ref_name = "SearchSeedsResult"

    @extend_schema(operation_id="searches_seeds", request=InputSerializer,
                   responses={201: OutputSerializer, **_REFUSALS},
                   description="Matched searches for Figure 6: this search's space, dataset, proxy, budget and "
                               "parallelism under each strategy with seeds 0 to N−1, in its team; a seed the team "
                               "already has with these settings is skipped and listed in `existing`.")
    def post(self, request, search_id: int):
        search, data = _launching_from(request, search_id, self.InputSerializer)
        runs = services.search_seeds_create(user=request.user, base=search, **data)
        result = {"created": [s.pk for s in runs.created], "existing": [s.pk for s in runs.existing],
                  "searches": [s.pk for s in runs.searches]}
        return Response(self.OutputSerializer(result).data, status=status.HTTP_201_CREATED)


class SearchActivityApi(APIView):
    """The search's activity, newest first: every change a user made to it."""

    pagination_class = LimitOffsetPagination

    class OutputSerializer(serializers.Serializer):
        user = serializers.CharField(source="user.get_username")
        message = serializers.CharField(source="change_message")
        at = serializers.DateTimeField(source="action_time")

        class Meta:
            ref_name = "SearchActivity"

    @extend_schema(operation_id="searches_activity_list",
                   responses={200: OutputSerializer(many=True), 404: ErrorSerializer})
    def get(self, request, search_id: int):
        search = search_get_for_user(user=request.user, search_id=search_id)
        return get_paginated_response(pagination_class=self.pagination_class, serializer_class=self.OutputSerializer,
                                      queryset=search_activity(search=search), request=request, view=self)


class TrialCancelApi(APIView):
    """Cancelling one trial steers its search, so it lives with the searches' operations (the
    trials app never imports the searches app)."""

    class OutputSerializer(TrialSummarySerializer):
        search = serializers.PrimaryKeyRelatedField(read_only=True)

        class Meta:
            model = Trial
            ref_name = "TrialCancelled"
            fields = ("search", *TRIAL_SUMMARY_FIELDS)

    @extend_schema(operation_id="trials_cancel", request=None,
                   responses={200: OutputSerializer, **_REFUSALS},
                   description="Stop one pending, running or waiting trial: its search's strategy is told it "
                               "failed, and the search goes on. Recorded in the search's activity.")
    def post(self, request, trial_id: int):
        trial = trial_get_for_user(user=request.user, trial_id=trial_id)
        require_perm(request.user, "searches.steer", trial.search)
        services.trial_cancel(user=request.user, trial=trial)
        return Response(self.OutputSerializer(trial_get_for_user(user=request.user, trial_id=trial_id)).data)


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

    class OutputSerializer(TrialSummarySerializer):
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


class CompareCostCurveSerializer(serializers.Serializer):
    gpu_hours = serializers.ListField(child=serializers.FloatField())
    best = serializers.ListField(child=serializers.FloatField())

    class Meta:
        ref_name = "CompareCostCurve"


class CompareCostSearchSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()
    strategy = serializers.CharField()
    gpu_hours = serializers.FloatField()
    best_reward = serializers.FloatField(allow_null=True)
    best_per_gpu_hour = serializers.FloatField(allow_null=True, help_text=(
        "The best reward reached / the GPU-hours spent up to the trial that reached it."))
    curve = CompareCostCurveSerializer(help_text="Best reward so far (`best`) against GPU-hours (`gpu_hours`): "
                                                 "a step at each improvement, and one at the total.")

    class Meta:
        ref_name = "CompareCostSearch"


class CompareCostStrategySerializer(serializers.Serializer):
    strategy = serializers.CharField()
    searches = serializers.IntegerField()
    best_reward = serializers.FloatField(allow_null=True)
    gpu_hours = serializers.FloatField()
    best_per_gpu_hour = serializers.FloatField(allow_null=True, help_text=(
        "The mean over its searches of each one's best reward / GPU-hours spent to reach it."))

    class Meta:
        ref_name = "CompareCostStrategy"


class CompareCostSerializer(serializers.Serializer):
    searches = CompareCostSearchSerializer(many=True)
    strategies = CompareCostStrategySerializer(many=True)

    class Meta:
        ref_name = "CompareCost"


class CompareApi(APIView):
    """Figure 6 of the NASNet paper for several searches: the mean reward of the top-k unique
    cells against the number of cells sampled, per search and per strategy (mean, its 95%
    interval over seeds, min, max), with failed trials counted apart."""

    MAX_SEARCHES = 50

    class FilterSerializer(serializers.Serializer):
        searches = serializers.CharField(help_text="Comma-separated search ids, e.g. 1,2,3.")
        top = serializers.CharField(required=False, default=",".join(map(str, DEFAULT_TOP_K)),
                                    help_text=f"Comma-separated k values, each from 1 to {MAX_TOP_K}.")

        class Meta:
            ref_name = "CompareQuery"

        def validate_searches(self, value: str) -> list[int]:
            try:
                ids = parse_int_list(value, name="searches")
            except ConfigError as exc:
                raise serializers.ValidationError(str(exc)) from None
            if not ids:
                raise serializers.ValidationError("give at least one search id")
            if len(ids) > CompareApi.MAX_SEARCHES:
                raise serializers.ValidationError(f"compare at most {CompareApi.MAX_SEARCHES} searches")
            return ids

        def validate_top(self, value: str) -> list[int]:
            try:
                return parse_top_k(value)
            except ConfigError as exc:
                raise serializers.ValidationError(str(exc)) from None

    class OutputSerializer(serializers.Serializer):
        class RunSerializer(serializers.Serializer):
            label = serializers.CharField()
            strategy = serializers.CharField()
            curves = serializers.DictField(
                child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
                help_text="k to one value per point of `x` (null until k unique cells exist).")
            sampled = serializers.IntegerField(help_text="Models sampled: trials evaluated, failed ones included.")
            failed = serializers.IntegerField(help_text="Failed trials: sampled, without a reward.")
            unique = serializers.IntegerField(help_text="Unique cells with a reward.")

            class Meta:
                ref_name = "CompareRun"

        class StrategySerializer(serializers.Serializer):
            strategy = serializers.CharField()
            runs = serializers.ListField(child=serializers.CharField())
            mean = serializers.DictField(child=serializers.ListField(child=serializers.FloatField(allow_null=True)))
            min = serializers.DictField(child=serializers.ListField(child=serializers.FloatField(allow_null=True)))
            max = serializers.DictField(child=serializers.ListField(child=serializers.FloatField(allow_null=True)))
            ci_low = serializers.DictField(
                child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
                help_text="The mean's 95% Student-t interval over the runs (null where fewer than two are defined).")
            ci_high = serializers.DictField(
                child=serializers.ListField(child=serializers.FloatField(allow_null=True)))
            sampled = serializers.IntegerField()
            failed = serializers.IntegerField()
            shortfall = serializers.DictField(
                child=serializers.CharField(),
                help_text="k to what its runs lack, e.g. 'needs 25 unique models, has 11'; only the k some run is short of.")

            class Meta:
                ref_name = "CompareStrategy"

        class SearchSerializer(serializers.Serializer):
            id = serializers.IntegerField()
            name = serializers.CharField()
            strategy = serializers.CharField()
            space = serializers.CharField()
            dataset = serializers.CharField()
            seed = serializers.IntegerField()
            status = serializers.CharField()

            class Meta:
                ref_name = "CompareSearch"

        x_label = serializers.CharField()
        y_label = serializers.CharField()
        top = serializers.ListField(child=serializers.IntegerField())
        x = serializers.ListField(
            child=serializers.IntegerField(),
            help_text="Numbers of models sampled that the curves' values belong to (long curves are thinned).")
        runs = RunSerializer(many=True)
        strategies = StrategySerializer(many=True)
        searches = SearchSerializer(many=True)
        cost = CompareCostSerializer(
            help_text="GPU-hours (device-hours) and best reward per GPU-hour, per search and per strategy.")
        significance = serializers.CharField(
            allow_null=True, help_text="Says the comparison is not yet significant (a strategy has fewer than 3 seeds).")
        running = serializers.BooleanField(help_text="Whether a compared search has not ended (the curves may grow).")

        class Meta:
            ref_name = "Comparison"

    @extend_schema(
        operation_id="compare_retrieve",
        parameters=[FilterSerializer],
        responses={200: OutputSerializer, 400: ValidationErrorSerializer},
    )
    def get(self, request):
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        ids, ks = query.validated_data["searches"], query.validated_data["top"]
        searches = searches_for_compare(user=request.user, search_ids=ids)
        missing = [i for i in ids if i not in {s.pk for s in searches}]
        if missing:
            raise ValidationError({"searches": [f"no search {', '.join(map(str, missing))} among your team's searches"]})
        if not searches_comparable(searches=searches):
            raise ValidationError({"searches": ["compare searches on the same space and dataset"]})
        # The curves can hold tens of thousands of points: return the selector's plain dict as it is.
        return Response(compare_curves(searches=searches, ks=ks))
