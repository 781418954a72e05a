"""REST API for cells: the best unique cells a team has found, drawn and downloadable."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.views import APIView

from webapp.api.errors import ErrorSerializer, ValidationErrorSerializer
from webapp.api.pagination import LimitOffsetPagination, get_paginated_response
from webapp.api.views import FileDownloadApi
from webapp.cells.diagrams import cell_diagram_svg
from webapp.cells.downloads import DartsUnsupportedError, genotype_darts_response, genotype_json_response
from webapp.cells.models import CellResult
from webapp.cells.selectors import cell_get_for_user, cell_result_list_for_user


class CellListApi(APIView):
    """The unique cells of the user's teams, best reward first: one row per cell and proxy
    config (rewards under different proxies are not comparable)."""

    pagination_class = LimitOffsetPagination

    class FilterSerializer(serializers.Serializer):
        dataset = serializers.CharField(required=False)
        space = serializers.CharField(required=False)

        class Meta:
            ref_name = "CellListQuery"

    class OutputSerializer(serializers.ModelSerializer):
        cell_hash = serializers.CharField(source="cell.cell_hash")
        space = serializers.CharField(source="cell.space")
        genotype = serializers.JSONField(source="cell.genotype")
        search = serializers.IntegerField(source="best_trial.search_id", help_text="The search of the best trial.")
        search_name = serializers.CharField(source="best_trial.search.__str__")

        class Meta:
            model = CellResult
            ref_name = "CellListItem"
            fields = ("id", "cell", "cell_hash", "space", "dataset", "proxy_key", "best_reward", "params",
                      "mult_adds", "trials_count", "best_trial", "search", "search_name", "genotype", "updated_at")

    @extend_schema(operation_id="cells_list", parameters=[FilterSerializer],
                   responses={200: OutputSerializer(many=True)})
    def get(self, request):
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        results = cell_result_list_for_user(user=request.user, **query.validated_data)
        return get_paginated_response(pagination_class=self.pagination_class, serializer_class=self.OutputSerializer,
                                      queryset=results, request=request, view=self)


class CellDiagramApi(FileDownloadApi):
    @extend_schema(operation_id="cells_diagram_retrieve",
                   responses={(200, "image/svg+xml"): OpenApiTypes.STR, 404: ErrorSerializer},
                   description="The Normal and Reduction cells drawn side by side (Graphviz SVG).")
    def get(self, request, cell_id: int):
        cell = cell_get_for_user(user=request.user, cell_id=cell_id)
        response = HttpResponse(cell_diagram_svg(cell_hash=cell.cell_hash, genotype=cell.genotype),
                                content_type="image/svg+xml")
        response["Cache-Control"] = "private, max-age=86400"  # a cell never changes
        return response


class CellGenotypeJsonApi(FileDownloadApi):
    @extend_schema(operation_id="cells_genotype_json_retrieve",
                   responses={(200, "application/json"): OpenApiTypes.OBJECT, 404: ErrorSerializer},
                   description="The versioned genotype JSON, as an attachment.")
    def get(self, request, cell_id: int):
        cell = cell_get_for_user(user=request.user, cell_id=cell_id)
        return genotype_json_response(genotype=cell.genotype, cell_hash=cell.cell_hash)


class CellGenotypeTextApi(FileDownloadApi):
    class FilterSerializer(serializers.Serializer):
        format = serializers.ChoiceField(choices=["darts"], default="darts",
                                         help_text="darts: a DARTS `Genotype(...)` string.")

        class Meta:
            ref_name = "GenotypeTextQuery"

    @extend_schema(operation_id="cells_genotype_text_retrieve", parameters=[FilterSerializer],
                   responses={(200, "text/plain"): OpenApiTypes.STR, 400: ValidationErrorSerializer,
                              404: ErrorSerializer},
                   description="The genotype as a DARTS string; 400 for cells DARTS cannot express "
                               "(blocks that concatenate, or another space's genotype).")
    def get(self, request, cell_id: int):
        cell = cell_get_for_user(user=request.user, cell_id=cell_id)
        self.FilterSerializer(data=request.query_params).is_valid(raise_exception=True)
        try:
            return genotype_darts_response(genotype=cell.genotype, cell_hash=cell.cell_hash)
        except DartsUnsupportedError as exc:
            raise ValidationError({"format": [str(exc)]}) from None
