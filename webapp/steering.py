"""What the pages that launch or steer a long run share: pausing, resuming or cancelling a
search or a transfer from its page, and saying no the same way when the user's role may not.
Imports no app, so that every app's views may use it.

A page refuses as the API does (the permission table's PermissionDenied), but where the API
answers 403, a page says why in an error message — "Could not pause this search:
searches.steer needs the member role or above in team 'x'; yours is viewer." — and goes back to
the page the user came from, whose buttons the role could not use are hidden anyway.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect


def refuse(request: HttpRequest, error: PermissionDenied, *, verb: str, noun: str, to: str,
           **url_kwargs) -> HttpResponse:
    """Say "Could not `verb` this `noun`: <the permission's reason>." and go to `to` (a URL name)."""
    messages.error(request, f"Could not {verb} this {noun}: {error}")
    return redirect(to, **url_kwargs)


def steer(request: HttpRequest, action: Callable[[], object], *, noun: str, verb: str, done: str,
          detail: str, pk: int) -> HttpResponse:
    """Run `action` (a permission check, then a service's pause, resume or cancel of the `noun`
    `pk`), say how it went in a message — "Could not `verb` this `noun`: …" for a refusal, the
    role's or the service's, else "`Noun` `done`." — and go back to its `detail` page (a URL name)."""
    try:
        action()
    except PermissionDenied as error:
        return refuse(request, error, verb=verb, noun=noun, to=detail, pk=pk)
    except ValidationError as error:
        messages.error(request, f"Could not {verb} this {noun}: {' '.join(error.messages)}")
    else:
        messages.success(request, f"{noun.capitalize()} {done}.")
    return redirect(detail, pk=pk)
