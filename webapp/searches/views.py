"""Pages for searches: the list, the new-search form, a search's live page (a one-shot search's
with its supernet, its best cells' diagrams and its checkpoint), the comparison.

Thin views: read through the selectors (always scoped to the user's teams), write through
the services, render templates. No torch here.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from searchcore.compare import DEFAULT_TOP_K, parse_int_list, parse_top_k
from searchcore.errors import ConfigError
from searchcore.proxy import ProxyConfig
from webapp.cells.diagrams import cell_diagram_svg
from webapp.searches import services
from webapp.searches.forms import (
    PROXY_FIELDS,
    SearchCreateForm,
    SearchEnqueueForm,
    SearchForkForm,
    SearchSeedsForm,
    SearchSteerForm,
)
from webapp.searches.models import OneShotRun, Search
from webapp.searches.selectors import (
    compare_curves,
    search_activity,
    search_estimate_for_user,
    search_get_for_user,
    search_list_for_user,
    search_oneshot_run,
    search_progress,
    search_workers,
    searches_comparable,
    searches_for_compare,
    searches_live,
    supernet_gpu_seconds,
)
from webapp.searches.services.steering import ONESHOT_NO_FORK
from webapp.steering import refuse, steer
from webapp.storage import stored_file_response
from webapp.teams.context_processors import may_launch_search
from webapp.teams.models import Team
from webapp.teams.permissions import has_perm, perms_for, require_perm
from webapp.trials.models import Trial
from webapp.trials.selectors import (
    TRIAL_ORDERINGS,
    trial_epochs_done,
    trial_list_for_search,
    trial_rewards_for_search,
)

SEARCHES_PER_PAGE = 25
TRIALS_PER_PAGE = 25
DEFAULT_TRIAL_ORDERING = "-index"  # newest first, so a live page shows arrivals at the top

#: What pausing does (lifecycle.search_pause, and a paused search's control step): the pause
#: button's confirmation and the message after it say it.
PAUSE_EFFECT = ("Trials already queued or training still train, and the strategy is told their results; "
                "no new trial is issued until it is resumed.")

#: The trials table's sortable columns: (ordering key, header label).
TRIAL_COLUMNS = (("index", "#"), ("status", "Status"), ("reward", "Reward"),
                 ("params", "Params"), ("mult_adds", "Mult-adds"))


def _list_context(request: HttpRequest) -> dict:
    """A page of the searches list (shared by the page and its partial; the queue's health strip
    is the workers app's `queue_health` tag)."""
    searches = search_list_for_user(user=request.user).order_by("-created_at", "-id")
    page = Paginator(searches, SEARCHES_PER_PAGE).get_page(request.GET.get("page"))
    return {"page": page, "live": searches_live(searches=page)}


@require_GET
def search_list(request: HttpRequest) -> HttpResponse:
    return render(request, "searches/list.html",
                  _list_context(request) | {"can_launch": may_launch_search(request.user)})


@require_GET
def search_list_live(request: HttpRequest) -> HttpResponse:
    """The polled part of the searches list: the queue's health and the page's rows. It comes
    back without its polling trigger once none of the page's searches can change."""
    return render(request, "searches/_list.html", _list_context(request))


def _teams_of(user) -> list[Team]:
    return list(Team.objects.filter(membership__user=user).order_by("name", "id"))


@require_http_methods(["GET", "POST"])
def search_new(request: HttpRequest) -> HttpResponse:
    """The new-search form, offering the teams where the user's role may launch (searches.launch);
    a user whose role may launch in none of theirs is told why and sent back to the list."""
    teams = _teams_of(request.user)
    launchable = [team for team in teams if has_perm(request.user, "searches.launch", team)]
    if teams and not launchable:
        try:
            require_perm(request.user, "searches.launch", teams[0])
        except PermissionDenied as error:
            return refuse(request, error, verb="launch", noun="search", to="searches:list")
    form = SearchCreateForm(request.POST or None, teams=launchable)
    if request.method == "POST" and not form.is_valid():
        form.service_check()
    elif request.method == "POST":
        try:
            search = services.search_create(user=request.user, **form.service_kwargs())
        except ValidationError as error:
            form.add_service_errors(error)
        except PermissionDenied as error:  # the role changed since the form was shown
            form.add_error("team" if "team" in form.fields else None, str(error))
        else:
            messages.success(request, f"Search “{search}” launched.")
            return redirect("searches:detail", pk=search.pk)
    return render(request, "searches/new.html", {"form": form})


#: The form's fields the estimate reads; it asks the user to fix these before estimating.
ESTIMATE_FIELDS = ("space", "dataset", "space_options", *PROXY_FIELDS)


@require_GET
def search_estimate(request: HttpRequest) -> HttpResponse:
    """The new-search form's estimate of a trial (htmx swaps it in as the form changes): the
    child's params, mult-adds and seconds, and whether its rewards sit near chance."""
    form = SearchCreateForm(request.GET)
    form.is_valid()
    faulty = [str(form[name].label) for name in ESTIMATE_FIELDS if name in form.errors]
    context: dict = {}
    if faulty:
        context["unavailable"] = f"No estimate until {', '.join(faulty)} {'is' if len(faulty) == 1 else 'are'} fixed."
    else:
        data = form.cleaned_data
        try:
            config = ProxyConfig.from_dict({**form.proxy(), "dataset": data["dataset"]})
        except ConfigError as error:
            context["unavailable"] = f"No estimate: {str(error).removeprefix('proxy config: ')}."
        else:
            context.update(search_estimate_for_user(user=request.user, space=data["space"],
                                                    space_options=data["space_options"] or {}, config=config,
                                                    budget=data.get("budget")))
    return render(request, "searches/_estimate.html", context)


#: The per-epoch numbers of a supernet the search page charts (searchcore.oneshot's epoch reports).
SUPERNET_CHART_KEYS = ("epoch", "train_loss", "train_acc", "sampled_val_acc", "best_val_acc")


def _supernet_context(search: Search) -> dict:
    """A one-shot search's supernet card: its run (None until the first control step starts it),
    its epochs for the chart, and its best cells, each with the trial that trains it standalone
    once there is one: the latest epoch's leaders while it trains, `top` once finished. The cells
    are drawn by `search_supernet_cell_diagram` (images the browser keeps, so a poll stays small)."""
    run = search_oneshot_run(search=search)
    if run is None:
        return {"supernet": None, "supernet_epochs": [], "supernet_cells": []}
    finished = run.status == OneShotRun.Status.FINISHED
    cells = run.top if finished else (run.epochs[-1].get("leaders", []) if run.epochs else [])
    trials = {trial.cell_hash: trial for trial in trial_list_for_search(search=search).filter(
        cell_hash__in=[cell["cell_hash"] for cell in cells])}
    return {
        "supernet": run,
        "supernet_ranked": finished,
        "supernet_gpu_hours": supernet_gpu_seconds(run=run) / 3600,
        # the epoch training now: one past the last stored, at most the last
        "supernet_epoch": min(len(run.epochs) + 1, run.epochs_total or len(run.epochs) + 1),
        "supernet_epochs": [{key: epoch.get(key) for key in SUPERNET_CHART_KEYS} for epoch in run.epochs],
        "supernet_cells": [{**cell, "trial": trials.get(cell["cell_hash"])} for cell in cells],
    }


def _trials_context(request: HttpRequest, search: Search) -> dict:
    """The status block and the current page of the trials table (shared by page and partial)."""
    ordering = request.GET.get("sort", DEFAULT_TRIAL_ORDERING)
    if ordering not in TRIAL_ORDERINGS:
        ordering = DEFAULT_TRIAL_ORDERING
    trials = trial_list_for_search(search=search, ordering=ordering).select_related("reused_from")
    page = Paginator(trials, TRIALS_PER_PAGE).get_page(request.GET.get("page"))
    running = [trial for trial in page if trial.status == Trial.Status.RUNNING]
    epochs_done = trial_epochs_done(trial_ids=[trial.pk for trial in running])
    for trial in running:  # the table shows a running trial's epoch k/n
        trial.epochs_done = epochs_done.get(trial.pk, 0)
    current = ordering.lstrip("-")
    columns = []
    for key, label in TRIAL_COLUMNS:
        if key == current:
            direction = "desc" if ordering.startswith("-") else "asc"
            next_sort = key if direction == "desc" else f"-{key}"
        else:
            direction = ""
            next_sort = f"-{key}" if key in ("index", "reward") else key
        columns.append({"key": key, "label": label, "direction": direction, "sort": next_sort})
    return {
        **(_supernet_context(search) if search.is_oneshot else {}),
        "search": search,
        "progress": search_progress(search=search),
        "workers": search_workers(search=search),
        "trials_page": page,
        "ordering": ordering,
        "columns": columns,
        "live": search.status not in Search.ENDED,
        "perms": perms_for(request.user, search),  # the buttons the user's role may use
        "pause_effect": PAUSE_EFFECT,
    }


#: Activity lines the search page shows.
ACTIVITY_LINES = 20


def _detail_context(request: HttpRequest, search: Search, steer_form: SearchSteerForm | None = None,
                    enqueue_form: SearchEnqueueForm | None = None) -> dict:
    """The search page's context: the live block's, and the steering card's (templates/searches/_steer.html)."""
    context = _trials_context(request, search)
    context["steer_form"] = steer_form or SearchSteerForm(
        initial={"parallelism": search.parallelism, "budget": search.budget}, auto_id="steer_%s")
    context["enqueue_form"] = enqueue_form or SearchEnqueueForm(auto_id="enqueue_%s")
    if search.is_oneshot:  # its budget is the supernet's top-k, fixed once the supernet starts (steering refuses it)
        budget = context["steer_form"].fields["budget"]
        budget.widget.attrs["readonly"] = True
        budget.help_text = ("A one-shot search's budget is the number of top cells its supernet ranks for standalone "
                            "training: fixed at launch.")
    progress = context["progress"]  # no query for the trials in flight when there are none
    context["steer_trials"] = (search.trials.filter(status__in=Trial.IN_FLIGHT).order_by("index")[:100]
                               if progress["running"] + progress["pending"] else [])
    context["activity"] = search_activity(search=search)[:ACTIVITY_LINES]
    context["forks"] = search.forks.order_by("id")[:20]
    return context


@require_GET
def search_detail(request: HttpRequest, pk: int) -> HttpResponse:
    search = search_get_for_user(user=request.user, search_id=pk)
    return render(request, "searches/detail.html", _detail_context(request, search))


@require_GET
def search_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The polled part of the detail page: status, progress, workers and the trials table.
    Once the search has ended the block comes back without its polling trigger."""
    search = search_get_for_user(user=request.user, search_id=pk)
    return render(request, "searches/_live.html", _trials_context(request, search))


@require_GET
def search_chart_data(request: HttpRequest, pk: int) -> JsonResponse:
    """Reward against trial index and the best so far, as compact arrays for Plotly."""
    search = search_get_for_user(user=request.user, search_id=pk)
    index, reward, best, failed = [], [], [], []
    best_so_far = None
    for i, value, status in trial_rewards_for_search(search=search):
        if status == Trial.Status.FINISHED and value is not None:
            best_so_far = value if best_so_far is None else max(best_so_far, value)
            index.append(i)
            reward.append(round(value, 5))
            best.append(round(best_so_far, 5))
        elif status == Trial.Status.FAILED:
            failed.append(i)
    return JsonResponse({"index": index, "reward": reward, "best": best, "failed": failed,
                         "done": len(index) + len(failed), "budget": search.budget,
                         "status": search.status})


def _supernet_genotype(run: OneShotRun, cell_hash: str) -> dict | None:
    """The genotype of a cell the supernet reported (a leader of an epoch, or ranked at the end)."""
    reported = [cell for epoch in run.epochs for cell in epoch.get("leaders", [])] + run.top + run.final
    return next((cell["genotype"] for cell in reported if cell.get("cell_hash") == cell_hash), None)


@require_GET
def search_supernet_cell_diagram(request: HttpRequest, pk: int, cell_hash: str) -> HttpResponse:
    """A cell the search's supernet reported, drawn (its Normal and Reduction cells, as a trial's
    page draws them): its best cells may not be trials yet, so they have no cell row to draw from."""
    search = search_get_for_user(user=request.user, search_id=pk)
    run = search_oneshot_run(search=search)
    genotype = None if run is None else _supernet_genotype(run, cell_hash)
    if genotype is None:
        raise Http404("This search's supernet reported no such cell.")
    response = HttpResponse(cell_diagram_svg(cell_hash=cell_hash, genotype=genotype), content_type="image/svg+xml")
    response["Cache-Control"] = "private, max-age=86400"  # a cell never changes
    return response


@require_GET
def search_supernet_checkpoint(request: HttpRequest, pk: int) -> FileResponse:
    """The supernet's last checkpoint (`last.pt`: shared weights, optimiser and sampler state, for
    torch.load(path, weights_only=True)), streamed as stored; 404 until an epoch has stored one,
    or when its stored name points outside MEDIA_ROOT (storage refuses those)."""
    search = search_get_for_user(user=request.user, search_id=pk)
    run = search_oneshot_run(search=search)
    missing = "This search's supernet has stored no checkpoint yet."
    if run is None:
        raise Http404(missing)
    return stored_file_response(run.last_checkpoint, missing=missing,
                                filename=f"search{search.pk}-supernet-epoch{run.checkpoint_epoch}.pt")


def _steer(request: HttpRequest, pk: int, action, verb: str, done: str) -> HttpResponse:
    search = search_get_for_user(user=request.user, search_id=pk)

    def act() -> None:
        require_perm(request.user, "searches.steer", search)
        action(search=search, user=request.user)

    return steer(request, act, noun="search", verb=verb, done=done, detail="searches:detail", pk=search.pk)


@require_POST
def search_pause(request: HttpRequest, pk: int) -> HttpResponse:
    return _steer(request, pk, services.search_pause, "pause", f"paused. {PAUSE_EFFECT.rstrip('.')}")


@require_POST
def search_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return _steer(request, pk, services.search_resume, "resume", "resumed. New trials are issued again")


@require_POST
def search_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _steer(request, pk, services.search_cancel, "cancel", "cancelled")


def _steering_form(request: HttpRequest, pk: int, *, form_class, form_key: str, verb: str, apply) -> HttpResponse:
    """One form of the steering card, posted: `apply(search, cleaned_data)` makes the change and
    returns the message to show. Errors come back as form errors on the search page (status
    400); a role that may not steer is refused as pause is."""
    search = search_get_for_user(user=request.user, search_id=pk)
    try:
        require_perm(request.user, "searches.steer", search)
    except PermissionDenied as error:
        return refuse(request, error, verb=verb, noun="search", to="searches:detail", pk=search.pk)
    form = form_class(request.POST, auto_id=f"{form_key}_%s")
    if form.is_valid():
        try:
            message = apply(search, form.cleaned_data)
        except ValidationError as error:
            form.add_service_errors(error)
        except PermissionDenied as error:
            return refuse(request, error, verb=verb, noun="search", to="searches:detail", pk=search.pk)
        else:
            messages.success(request, message)
            return redirect("searches:detail", pk=search.pk)
    return render(request, "searches/detail.html", _detail_context(request, search, **{f"{form_key}_form": form}),
                  status=400)


@require_POST
def search_steer(request: HttpRequest, pk: int) -> HttpResponse:
    """The steering card's form: a new parallelism and budget."""

    def apply(search: Search, data: dict) -> str:
        services.search_steer(user=request.user, search=search, **data)
        return f"Search steered: parallelism {search.parallelism}, budget {search.budget}."

    return _steering_form(request, pk, form_class=SearchSteerForm, form_key="steer", verb="steer", apply=apply)


@require_POST
def search_enqueue(request: HttpRequest, pk: int) -> HttpResponse:
    """The steering card's "Enqueue cell" form: a genotype JSON or DARTS string that the search's
    next trial trains."""

    def apply(search: Search, data: dict) -> str:
        result = services.search_enqueue(user=request.user, search=search, genotype=data["genotype"])
        return f"Cell {result['cell_hash'][:8]} enqueued: the search's next trial trains it."

    return _steering_form(request, pk, form_class=SearchEnqueueForm, form_key="enqueue", verb="enqueue a cell in",
                          apply=apply)


@require_http_methods(["GET", "POST"])
def search_fork(request: HttpRequest, pk: int) -> HttpResponse:
    """The fork page: a new search going on from this one's strategy, from chosen trials
    (`?trials=3,7` fills them in, as a trial page's "Fork from this trial" link does)."""
    search = search_get_for_user(user=request.user, search_id=pk)
    try:
        require_perm(request.user, "searches.launch", search.team)
    except PermissionDenied as error:
        return refuse(request, error, verb="fork", noun="search", to="searches:detail", pk=search.pk)
    if search.is_oneshot:  # the service refuses it: say why before a form is filled in
        messages.error(request, f"Not forked: {ONESHOT_NO_FORK}.")
        return redirect("searches:detail", pk=search.pk)
    initial = {"trials": request.GET.get("trials", "")[:2000], "strategy_options": search.strategy_options}
    form = SearchForkForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            fork = services.search_fork(user=request.user, search=search, **form.service_kwargs())
        except ValidationError as error:
            form.add_service_errors(error)
        except PermissionDenied as error:
            return refuse(request, error, verb="fork", noun="search", to="searches:detail", pk=search.pk)
        else:
            messages.success(request, f"Search “{fork}” forked from “{search}”.")
            return redirect("searches:detail", pk=fork.pk)
    best = search.trials.filter(status=Trial.Status.FINISHED, reward__isnull=False).order_by("-reward", "index")
    return render(request, "searches/fork.html", {"search": search, "form": form, "best_trials": best[:10]},
                  status=400 if form.errors else 200)


@require_POST
def search_trial_cancel(request: HttpRequest, pk: int, trial_pk: int) -> HttpResponse:
    """A trial row's "Cancel trial" button: the strategy is told it failed; the search goes on."""
    search = search_get_for_user(user=request.user, search_id=pk)
    trial = get_object_or_404(search.trials.select_related("search"), pk=trial_pk)

    def act() -> None:
        require_perm(request.user, "searches.steer", search)
        services.trial_cancel(user=request.user, trial=trial)

    return steer(request, act, noun=f"trial {trial.index}", verb="cancel", done="cancelled",
                 detail="searches:detail", pk=search.pk)


def _int_list(query, key: str, parse, errors: list[str], default: list[int]) -> list[int]:
    """The comma lists under `key` in `query` (request.GET or request.POST), read as the CLI and
    the API read them; bad text leaves the default and says why in `errors`."""
    text = ",".join(query.getlist(key))
    try:
        return parse(text, name=key) if text.strip() else default
    except ConfigError as exc:
        errors.append(str(exc))
        return default


def _compare_query(searches, ks: list[int]) -> str:
    """The compare page's query string for these searches and k."""
    return urlencode({"searches": ",".join(str(s.pk) for s in searches), "top": ",".join(map(str, ks))})


def _compare_page(request: HttpRequest, query, seeds_form: SearchSeedsForm | None = None) -> HttpResponse:
    """The compare page for the searches and k named in `query`, with the seeds form (bound, with
    its errors, when a run of seeds was refused: status 400)."""
    errors: list[str] = []
    ids = _int_list(query, "searches", parse_int_list, errors, default=[])
    ks = _int_list(query, "top", parse_top_k, errors, default=list(DEFAULT_TOP_K))
    selected = searches_for_compare(user=request.user, search_ids=ids)
    missing = [i for i in ids if i not in {s.pk for s in selected}]
    if missing:
        errors.append(f"No search of yours has id {', '.join(map(str, missing))}.")
    data = None
    if ids:
        if len(selected) < 2:
            errors.append("Pick at least two searches to compare.")
        elif not searches_comparable(searches=selected):
            described = "; ".join(f"#{s.pk} is {s.space} on {s.dataset}" for s in selected)
            errors.append(f"Searches can only be compared on the same space and dataset: {described}.")
        elif not errors:
            data = compare_curves(searches=selected, ks=ks)
    notes = []
    if data is not None and len({s.proxy_key for s in selected}) > 1:
        notes.append("These searches trained their children under different proxy settings, "
                     "so their rewards are not strictly comparable.")
    if seeds_form is None and data is not None:
        seeds_form = SearchSeedsForm(auto_id="seeds_%s", initial={
            "base": selected[0].pk, "strategies": list(dict.fromkeys(s.strategy for s in selected))})
    choices = search_list_for_user(user=request.user).order_by("space", "dataset", "-created_at")[:500]
    picked = _int_list(query, "pick", parse_int_list, [], default=[])  # pre-ticked boxes (the detail page's link)
    return render(request, "searches/compare.html", {
        "choices": choices, "selected_ids": ({s.pk for s in selected} or set(ids)) | set(picked),
        "selected": selected, "top": ",".join(map(str, ks)), "errors": errors, "notes": notes,
        "data": data, "seeds_form": seeds_form,
        "may_run_seeds": data is not None and has_perm(request.user, "searches.launch", selected[0].team),
        "rows": list(zip(selected, data["runs"], strict=True)) if data else [],
        # While a compared search may still change, the results poll this page (htmx), less often when large.
        "poll_url": f"{reverse('searches:compare')}?{_compare_query(selected, ks)}",
        "poll_seconds": max(5, min(60, sum(run["sampled"] for run in data["runs"]) // 2000)) if data else None,
    }, status=400 if seeds_form is not None and seeds_form.errors else 200)


@require_GET
def search_compare(request: HttpRequest) -> HttpResponse:
    """NASNet Figure 6 for two or more searches on the same space and dataset."""
    return _compare_page(request, request.GET)


@require_POST
def search_compare_seeds(request: HttpRequest) -> HttpResponse:
    """The compare page's "Run N seeds of each strategy": make the matched searches (skipping
    seeds that exist) and compare them; a refusal comes back as a form error on the page."""
    form = SearchSeedsForm(request.POST, auto_id="seeds_%s")
    if form.is_valid():
        base = search_get_for_user(user=request.user, search_id=form.cleaned_data["base"])
        try:
            runs = services.search_seeds_create(user=request.user, base=base, strategies=form.cleaned_data["strategies"],
                                                seeds=form.cleaned_data["seeds"])
        except ValidationError as error:
            form.add_service_errors(error)
        except PermissionDenied as error:
            return refuse(request, error, verb="run seeds of", noun="search", to="searches:compare")
        else:
            made = ", ".join(f"#{s.pk} ({s.strategy} seed {s.seed})" for s in runs.created) or "none"
            message = f"Searches made: {made}."
            if runs.existing:
                message += " Skipped, as they exist: " + ", ".join(
                    f"#{s.pk} ({s.strategy} seed {s.seed})" for s in runs.existing) + "."
            messages.success(request, message)
            ks = _int_list(request.POST, "top", parse_top_k, [], default=list(DEFAULT_TOP_K))
            return redirect(f"{reverse('searches:compare')}?{_compare_query(runs.searches, ks)}")
    return _compare_page(request, request.POST, seeds_form=form)
