"""Where artifacts (checkpoints, exports) are stored: Django's STORAGES["default"] from
CELLSEARCH_STORAGE_URL.

Unset or empty: local files under MEDIA_ROOT (one machine, or a shared mount). Set to
`s3://bucket[/prefix][?endpoint_url=...&region=...&addressing_style=...]`: any S3-compatible store
through django-storages, so gpu workers on several hosts and the web server share the files. The
credentials are never in the URL: boto3 reads them from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
(or a profile, an instance role). A URL that cannot be used stops the process at startup with one
line naming the variable.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from django.core.exceptions import ImproperlyConfigured

VARIABLE = "CELLSEARCH_STORAGE_URL"
LOCAL_BACKEND = "django.core.files.storage.FileSystemStorage"
S3_BACKEND = "webapp.storage.S3ArtifactStorage"
_QUERY = {"endpoint_url": "endpoint_url", "region": "region_name", "region_name": "region_name",
          "addressing_style": "addressing_style"}


def _bad(url: str, reason: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{VARIABLE}={url!r}: {reason} (expected s3://bucket/prefix?endpoint_url=...&region=...)")


def default_storage_from_url(url: str) -> dict[str, Any]:
    """The STORAGES["default"] entry for the URL; raises ImproperlyConfigured for one it cannot use."""
    url = url.strip()
    if not url:
        return {"BACKEND": LOCAL_BACKEND}
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise _bad(url, f"unknown scheme {parts.scheme or '(none)'!r}")
    if parts.username or parts.password:
        raise _bad(url, "credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if not parts.hostname:
        raise _bad(url, "no bucket")
    options: dict[str, Any] = {"bucket_name": parts.netloc, "location": parts.path.strip("/"),
                               "file_overwrite": False, "default_acl": None}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _QUERY:
            raise _bad(url, f"unknown option {key!r} (known: {', '.join(sorted(_QUERY))})")
        if not value:
            raise _bad(url, f"empty {key}")
        options[_QUERY[key]] = value
    endpoint = options.get("endpoint_url")
    if endpoint is not None:
        split = urlsplit(endpoint)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise _bad(url, f"endpoint_url {endpoint!r} is not an http(s) address")
        # MinIO, moto and most self-hosted stores answer path-style requests only.
        options.setdefault("addressing_style", "path")
    if options.get("addressing_style") not in (None, "path", "virtual", "auto"):
        raise _bad(url, "addressing_style must be path, virtual or auto")
    return {"BACKEND": S3_BACKEND, "OPTIONS": options}
