"""The API's error format, made in one place and documented by the serializers below.

Views call services and selectors directly; whatever they refuse with reaches
`exception_handler` (settings REST_FRAMEWORK["EXCEPTION_HANDLER"]), which answers a service's
Django `ValidationError` and a `searchcore` error as a 400 `{field: [reasons]}`, the same body
a serializer's own validation gives. Everything else keeps DRF's handling (401, 404 `{detail}`).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from searchcore.errors import SearchcoreError


def exception_handler(exc: Exception, context: dict):
    if isinstance(exc, SearchcoreError):  # a ConfigError names its field; other errors are about the request
        exc = DjangoValidationError({getattr(exc, "field", None) or NON_FIELD_ERRORS: [str(exc)]})
    if isinstance(exc, DjangoValidationError):
        exc = ValidationError(validation_error_detail(exc))
    return drf_exception_handler(exc, context)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 404 (settings' ROOT_URLCONF handler404), for a URL no route matches: under /api/
    the API's own `{"detail"}` body, so a client reads every API error alike; the HTML page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)


def validation_error_detail(exc: DjangoValidationError) -> dict | list:
    """A service's ValidationError as DRF error detail: `{"field": [msg]}`, with dotted keys
    nested (`"proxy.epochs"` becomes `{"proxy": {"epochs": [msg]}}`)."""
    if not hasattr(exc, "error_dict"):
        return {api_settings.NON_FIELD_ERRORS_KEY: exc.messages}
    detail: dict[str, Any] = {}
    for key, messages in exc.message_dict.items():
        if key == NON_FIELD_ERRORS:
            key = api_settings.NON_FIELD_ERRORS_KEY
        *parents, leaf = key.split(".")
        node = detail
        for parent in parents:
            child = node.setdefault(parent, {})
            if not isinstance(child, dict):  # "proxy" and "proxy.epochs" both failed
                child = node[parent] = {api_settings.NON_FIELD_ERRORS_KEY: child}
            node = child
        if isinstance(node.get(leaf), dict):
            node[leaf].setdefault(api_settings.NON_FIELD_ERRORS_KEY, []).extend(messages)
        else:
            node.setdefault(leaf, []).extend(messages)
    return detail


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()

    class Meta:
        ref_name = "Error"


class ValidationErrorSerializer(serializers.Serializer):
    """Field name to a list of messages (nested for objects such as `proxy`)."""

    non_field_errors = serializers.ListField(child=serializers.CharField(), required=False)

    class Meta:
        ref_name = "ValidationErrors"
