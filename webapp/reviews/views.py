"""The review page of a cell: comments, ratings, tags, the status and the activity, for one team.

Thin: reads through the selectors, writes through the services (which ask the permission
table); each form posts and comes back to the page, with the refusal shown as a message.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from webapp.reviews import services
from webapp.reviews.models import ReviewStatus
from webapp.reviews.selectors import (
    ReviewSubject,
    activity_for_subject,
    activity_text,
    approval_decision_id,
    comment_html,
    comment_list,
    rating_summary,
    review_status_get,
    review_subject_get_for_user,
    tag_names,
)
from webapp.teams.permissions import perms_for


def _subject(request: HttpRequest, cell_hash: str) -> ReviewSubject:
    team = request.GET.get("team") or request.POST.get("team") or ""
    return review_subject_get_for_user(user=request.user, cell_hash=cell_hash,
                                       team_id=int(team) if team.isdigit() else None)


@require_http_methods(["GET"])
def review_detail(request: HttpRequest, cell_hash: str) -> HttpResponse:
    subject = _subject(request, cell_hash)
    review = review_status_get(subject=subject)
    comments = [(comment, comment_html(comment=comment)) for comment in comment_list(subject=subject)]
    activity = [(row, activity_text(activity=row)) for row in activity_for_subject(subject=subject)[:50]]
    decision = approval_decision_id(subject=subject)
    transfer_url = (f"{reverse('transfers:new')}?cell={subject.cell.cell_hash}&decision={decision}"
                    if decision else None)
    next_statuses = sorted(services.TRANSITIONS[review.status])
    return render(request, "reviews/cell.html", {
        "subject": subject, "review": review, "comments": comments, "activity": activity,
        "rating": rating_summary(subject=subject, user=request.user), "tags": tag_names(subject=subject),
        "perms": perms_for(request.user, subject.team), "next_statuses": next_statuses,
        "transfer_url": transfer_url, "stars": range(1, 6), "Status": ReviewStatus.Status,
    })


@require_POST
def review_action(request: HttpRequest, cell_hash: str, action: str) -> HttpResponse:
    subject = _subject(request, cell_hash)
    data = request.POST
    try:
        if action == "comment":
            services.comment_create(user=request.user, subject=subject, body=data.get("body", ""))
        elif action == "rate":
            stars = data.get("stars", "")
            services.rating_set(user=request.user, subject=subject, stars=int(stars) if stars.isdigit() else 0)
        elif action == "tag":
            services.tag_add(user=request.user, subject=subject, name=data.get("name", ""))
        elif action == "untag":
            services.tag_remove(user=request.user, subject=subject, name=data.get("name", ""))
        elif action == "status":
            services.review_status_set(user=request.user, subject=subject, status=data.get("status", ""),
                                       note=data.get("note", ""))
        else:
            return HttpResponse(status=404)
    except ValidationError as exc:
        for field, reasons in exc.message_dict.items():
            messages.error(request, f"{field}: {'; '.join(reasons)}")
    except (PermissionDenied, services.ReviewRateLimited) as exc:
        messages.error(request, str(exc))
    url = reverse("reviews:detail", kwargs={"cell_hash": cell_hash})
    return redirect(f"{url}?team={subject.team.pk}")
