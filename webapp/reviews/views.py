"""The review page of a cell: comments, ratings, tags, the status and the activity, for one team.

Thin: reads through the selectors, writes through the services (which ask the permission
table); each form posts and comes back to the page, with the refusal shown as a message.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp.reviews import services
from webapp.reviews.models import ReviewStatus
from webapp.reviews.selectors import (
    AWAITING,
    COMPARE_MAX,
    ReviewSubject,
    activity_for_subject,
    activity_list_for_user,
    activity_text,
    approval_decision_id,
    comment_html,
    comment_list,
    parse_cell_hashes,
    rating_summary,
    review_compare_for_user,
    review_queue_count,
    review_queue_for_user,
    review_queue_tags,
    review_status_get,
    review_subject_get_for_user,
    review_tag_choices,
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


# -- the queue and the side-by-side ----------------------------------------------------------------

QUEUE_PER_PAGE = 25
ACTIVITY_PER_PAGE = 50


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@require_GET
def review_queue(request: HttpRequest) -> HttpResponse:
    """The cells awaiting review in the user's teams, best first; filters: search, tag, status."""
    status = request.GET.get("status") or ""
    status = status if status in AWAITING else ""
    tag = (request.GET.get("tag") or "").strip()
    search_id, team_id = _int_or_none(request.GET.get("search")), _int_or_none(request.GET.get("team"))
    filters = {"team_id": team_id, "search_id": search_id, "tag": tag or None, "status": status or None}
    paginator = Paginator(review_queue_for_user(user=request.user, **filters), QUEUE_PER_PAGE)
    paginator.count = review_queue_count(user=request.user, **filters)  # type: ignore[misc]
    page = paginator.get_page(request.GET.get("page"))
    page.object_list = review_queue_tags(results=list(page.object_list))
    return render(request, "reviews/queue.html", {
        "page": page, "status": status, "tag": tag, "search": search_id or "", "team": team_id or "",
        "statuses": [ReviewStatus.Status(s) for s in AWAITING], "tags": review_tag_choices(user=request.user),
        "compare_max": COMPARE_MAX,
    })


@require_GET
def review_activity(request: HttpRequest) -> HttpResponse:
    """The review activity of a search (`?search=`), a team (`?team=`) or all the user's teams,
    newest first; another team's is empty."""
    search_id, team_id = _int_or_none(request.GET.get("search")), _int_or_none(request.GET.get("team"))
    feed = activity_list_for_user(user=request.user, search_id=search_id, team_id=team_id)
    page = Paginator(feed, ACTIVITY_PER_PAGE).get_page(request.GET.get("page"))
    page.object_list = [(row, activity_text(activity=row)) for row in page.object_list]
    return render(request, "reviews/activity.html", {"page": page, "search": search_id or "", "team": team_id or ""})


@require_GET
def review_compare(request: HttpRequest) -> HttpResponse:
    """2–4 cells of a team side by side (`?cells=a,b` or `?cells=a&cells=b`)."""
    try:
        hashes = parse_cell_hashes(",".join(request.GET.getlist("cells")))
    except ValidationError as exc:
        return render(request, "reviews/compare.html", {"error": "; ".join(exc.message_dict["cells"])}, status=400)
    comparison = review_compare_for_user(user=request.user, cell_hashes=hashes,
                                         team_id=_int_or_none(request.GET.get("team")))
    for cell in comparison["cells"]:
        cell["curve"] = [{"epoch": e.get("epoch"), "val_acc": e.get("val_acc")} for e in cell["epochs"]]
        accs = [e["val_acc"] for e in cell["curve"] if isinstance(e["val_acc"], int | float)]
        step = 100 / (len(accs) - 1) if len(accs) > 1 else 0
        cell["spark"] = " ".join(f"{i * step:.1f},{30 - 30 * acc:.1f}" for i, acc in enumerate(accs)) if accs else ""
    return render(request, "reviews/compare.html", {"comparison": comparison})
