"""Paging a list operation: one helper for every list view, and the limit/offset defaults."""

from __future__ import annotations

from rest_framework import pagination
from rest_framework.response import Response


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    default_limit = 50
    max_limit = 200


def get_paginated_response(*, pagination_class, serializer_class, queryset, request, view) -> Response:
    paginator = pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    serializer = serializer_class(page if page is not None else queryset, many=True, context={"request": request})
    if page is None:
        return Response(serializer.data)
    return paginator.get_paginated_response(serializer.data)
