"""What the pages that steer a long run share: pausing, resuming or cancelling a search or a
transfer from its page. Imports no app, so that every app's views may use it."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect


def steer(request: HttpRequest, action: Callable[[], object], *, noun: str, verb: str, done: str,
          detail: str, pk: int) -> HttpResponse:
    """Run `action` (a service's pause, resume or cancel of the `noun` `pk`), say how it went
    in a message — "Could not `verb` this `noun`: …" for the service's refusal, else "`Noun`
    `done`." — and go back to its `detail` page (a URL name)."""
    try:
        action()
    except ValidationError as error:
        messages.error(request, f"Could not {verb} this {noun}: {' '.join(error.messages)}")
    else:
        messages.success(request, f"{noun.capitalize()} {done}.")
    return redirect(detail, pk=pk)
