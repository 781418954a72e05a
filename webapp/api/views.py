"""Base views for operations whose success is not JSON."""

from __future__ import annotations

from django.core.exceptions import SuspiciousFileOperation
from rest_framework.exceptions import NotFound
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView


class FileDownloadApi(APIView):
    """A view that answers a file (an HttpResponse of its own) and JSON errors, whatever the
    client accepts: a browser's `<img>` or `curl -H 'Accept: image/svg+xml'` gets the file, and
    a 404 or 400 is still readable JSON instead of a 406."""

    renderer_classes = (JSONRenderer,)

    def perform_content_negotiation(self, request, force=False):
        renderer = JSONRenderer()
        return renderer, renderer.media_type

    def handle_exception(self, exc):
        # A stored name outside MEDIA_ROOT (`../`, an absolute path) is no file of ours: 404, never
        # the file and never a 400/500 (the download helpers already say so; this is the backstop).
        if isinstance(exc, SuspiciousFileOperation):
            exc = NotFound("No such file.")
        return super().handle_exception(exc)
