"""The search's activity: one line per change a user made to a running search (its settings,
pause, resume, cancel, a trial cancelled, a cell enqueued, a fork), with its actor and time.

The lines are Django's admin log (django.contrib.admin's LogEntry, on the search): the review
activity (webapp.reviews) is about cells, and each of its rows needs one. Written in the same
transaction as the change; read with `selectors.search_activity`.
"""

from __future__ import annotations

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType

from webapp.searches.models import Search


def search_activity_record(*, user, search: Search, message: str) -> LogEntry:
    """Add `message` ("parallelism 2 → 4") by `user` to `search`'s activity."""
    return LogEntry.objects.create(
        user_id=user.pk, content_type_id=ContentType.objects.get_for_model(Search).pk, object_id=str(search.pk),
        object_repr=str(search)[:200], action_flag=CHANGE, change_message=message)
