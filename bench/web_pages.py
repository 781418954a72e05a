"""How fast the web app's pages and API answer with many trials.

Fills a database of its own (a temporary SQLite file by default; never var/db.sqlite3) with
one team's searches, `--trials` trials in all (rewards, a few epochs each, mostly finished,
some running, pending or failed), their cells and the team's best-cell results; then asks
every page and API endpoint a user reads through the Django test client, logged in, and
prints per endpoint the median and p95 time, the number of SQL queries and the response size.

It also prints ratios measured side by side in the same run (rounds alternate between the two
sides): a selector's earlier version against the current one, and the trials table's query
with and without an index the models do not declare yet (made in this bench database only).

Run from the repository root:
    python bench/web_pages.py [--trials 100000] [--searches 5] [--repeat 5] [--db PATH]
With DATABASE_URL set (and no --db) it runs against that database instead, e.g. PostgreSQL:
it must be a scratch database — the bench adds its user, team and searches there.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

BENCH_USER = "bench-user"
BENCH_TEAM = "bench-team"
STRATEGIES = ("ppo", "random")


# -- cells: random NASNet genotypes, hashed in worker processes -------------------------------


def _cells_chunk(args: tuple[int, int]) -> list[tuple[str, dict]]:
    import numpy as np

    from searchcore.spaces import create_space
    from searchcore.spaces.registry import sha256_of

    seed, count = args
    space, rng = create_space("nasnet"), np.random.default_rng(seed)
    out = []
    for _ in range(count):
        # Not canonicalised (that costs 3x the sampling): the bench needs distinct cells, not
        # equivalence classes, and hashes the genotype as sampled.
        genotype = space.sample(rng).to_dict()
        out.append((sha256_of(genotype), genotype))
    return out


def make_cell_pool(count: int, seed: int) -> list[tuple[str, dict]]:
    """`count` random nasnet genotypes with their hashes (duplicates dropped), made in parallel."""
    from concurrent.futures import ProcessPoolExecutor

    chunk = 2_000
    jobs = [(seed * 1_000_003 + i, min(chunk, count - start)) for i, start in enumerate(range(0, count, chunk))]
    with ProcessPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1)) as pool:
        parts = list(pool.map(_cells_chunk, jobs))
    unique = {}
    for part in parts:
        for cell_hash, genotype in part:
            unique.setdefault(cell_hash, genotype)
    return list(unique.items())


# -- settings and data -----------------------------------------------------------------------


def configure(args) -> str:
    """Point Django at the bench's own database; returns a description of it."""
    if args.db:
        db_path = Path(args.db).resolve()
    elif os.environ.get("DATABASE_URL"):
        db_path = None
    else:
        fd, name = tempfile.mkstemp(prefix="cellsearch-bench-", suffix=".sqlite3")
        os.close(fd)
        os.unlink(name)
        db_path = Path(name)
        args.cleanup = True
    if db_path is not None:
        if db_path == (ROOT / "var" / "db.sqlite3").resolve():
            sys.exit("refusing to use var/db.sqlite3: give the bench a database of its own")
        os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
        args.db_path = db_path
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings.test")  # no secrets, no broker
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")
    warnings.filterwarnings("ignore", message="No directory at")  # whitenoise: no collectstatic here
    import django

    django.setup()
    import platform

    from django.db import connection

    version = connection.Database.sqlite_version if connection.vendor == "sqlite" else ""
    return (f"{connection.vendor} {version} {connection.settings_dict['NAME']} (Python {platform.python_version()}, "
            f"Django {django.get_version()}, {os.cpu_count()} CPUs)")


def _next_id(model) -> int:
    from django.db.models import Max

    return (model.objects.aggregate(m=Max("id"))["m"] or 0) + 1


def populate(args) -> dict:
    """Make the bench user, team, searches, cells, trials and cell results; returns ids.

    Each search draws 90% new cells and repeats 10% of its own earlier ones (their results
    are copied: `reused_from`), as a search that starts to converge does. Ids are set here,
    so one bulk insert per table makes everything."""
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.management.color import no_style
    from django.db import connection, transaction
    from django.utils import timezone

    from searchcore.proxy import ProxyConfig
    from searchcore.spaces.registry import sha256_of
    from webapp.cells.models import Cell, CellResult
    from webapp.searches.models import Search
    from webapp.teams.models import Membership, Team
    from webapp.trials.models import Trial

    User = get_user_model()
    existing = User.objects.filter(username=BENCH_USER).first()
    if existing is not None:
        searches = list(Search.objects.filter(team__name=BENCH_TEAM).order_by("id"))
        trials = Trial.objects.filter(search__team__name=BENCH_TEAM).count()
        print(f"reusing the bench data already in the database: {len(searches)} searches, {trials:,} trials")
        return {"user": existing, "searches": [s.pk for s in searches]}

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    pool = make_cell_pool(args.cells, args.seed)
    t1 = time.perf_counter()
    print(f"  {len(pool):,} random nasnet cells sampled and hashed in {t1 - t0:.1f} s")

    now = timezone.now()
    proxy = ProxyConfig(dataset="digits").to_dict()
    proxy_key = sha256_of(proxy)
    per_search = [args.trials // args.searches + (1 if i < args.trials % args.searches else 0)
                  for i in range(args.searches)]
    with transaction.atomic():
        user = User.objects.create_user(username=BENCH_USER, password="bench-password-1")
        team = Team.objects.create(name=BENCH_TEAM)
        Membership.objects.create(team=team, user=user)
        other = User.objects.create_user(username="bench-other", password="bench-password-1")
        other_team = Team.objects.create(name="bench-other-team")
        Membership.objects.create(team=other_team, user=other)

        first_cell = _next_id(Cell)
        Cell.objects.bulk_create([Cell(id=first_cell + i, cell_hash=h, space="nasnet", genotype=g)
                                  for i, (h, g) in enumerate(pool)], batch_size=2_000)

        searches = []
        for i, n in enumerate(per_search):
            running = i == len(per_search) - 1  # the newest search is still going
            searches.append(Search(
                team=team, owner=user, name=f"bench {i}", strategy=STRATEGIES[i % len(STRATEGIES)],
                dataset="digits", proxy=proxy, proxy_key=proxy_key, budget=n + (50 if running else 0),
                parallelism=8, seed=i, status=Search.Status.RUNNING if running else Search.Status.FINISHED,
                trials_issued=n, started_at=now, finished_at=None if running else now))
        searches.append(Search(team=other_team, owner=other, name="another team's", strategy="random",
                               dataset="digits", proxy=proxy, proxy_key=proxy_key, budget=100, parallelism=2,
                               status=Search.Status.FINISHED, trials_issued=100))
        Search.objects.bulk_create(searches)
        searches = list(Search.objects.filter(team__in=[team, other_team]).order_by("id"))  # ids on every backend
        sizes = per_search + [100]

        order = rng.permutation(len(pool))
        next_new = 0
        trial_id = _next_id(Trial)
        best: dict[tuple[int, int], list] = {}  # (cell id, team id) -> [best reward, trial, trials counted]
        trials = []
        for search, n in zip(searches, sizes):
            running = search.status == Search.Status.RUNNING
            rewards = np.clip(0.55 + 0.3 * np.linspace(0, 1, n) + rng.normal(0, 0.08, n), 0.1, 0.99)
            failed = rng.random(n) < 0.03
            repeat = rng.random(n) < 0.10
            params = rng.integers(10_000, 120_000, size=n)
            picks, first_finished = [], {}
            for index in range(n):
                if index and repeat[index]:
                    pick = picks[int(rng.integers(len(picks)))]
                else:
                    pick, next_new = int(order[next_new % len(pool)]), next_new + 1
                picks.append(pick)
                cell_hash, genotype = pool[pick]
                if running and index >= n - 12:
                    status = Trial.Status.PENDING if index >= n - 4 else Trial.Status.RUNNING
                elif failed[index]:
                    status = Trial.Status.FAILED
                else:
                    status = Trial.Status.FINISHED
                trial = Trial(id=trial_id, search=search, index=index, cell_id=first_cell + pick, genotype=genotype,
                              cell_hash=cell_hash, status=status, created_at=now)
                trial_id += 1
                if status != Trial.Status.PENDING:
                    trial.started_at, trial.attempts = now, 1
                    epochs = 3 if status != Trial.Status.RUNNING else 1
                    trial.epochs = [{"epoch": e, "train_loss": 1.0 / (e + 1), "train_acc": 0.8, "val_loss": 0.7,
                                     "val_acc": 0.8, "lr": 0.05, "seconds": 3.2, "images_per_second": 400.0}
                                    for e in range(epochs)]
                if status == Trial.Status.RUNNING:
                    trial.worker, trial.heartbeat_at = f"gpu{index % 8}@bench", now
                if status == Trial.Status.FAILED:
                    trial.error = "TrainingDivergedError: loss is nan"
                if status in Trial.DONE:
                    trial.finished_at, trial.told = now, True
                if status == Trial.Status.FINISHED:
                    first = first_finished.setdefault(cell_hash, trial)
                    if first is not trial:  # a cell this search trained before: its result is copied
                        trial.reused_from_id = first.id
                        trial.reward, trial.val_acc = first.reward, first.val_acc
                        trial.params, trial.mult_adds = first.params, first.mult_adds
                    else:
                        trial.reward = trial.val_acc = float(rewards[index])
                        trial.params, trial.mult_adds = int(params[index]), int(params[index]) * 40
                        entry = best.setdefault((trial.cell_id, search.team_id), [trial.reward, trial, 0])
                        entry[2] += 1
                        if trial.reward > entry[0]:
                            entry[0], entry[1] = trial.reward, trial
                trials.append(trial)
        Trial.objects.bulk_create(trials, batch_size=2_000)
        CellResult.objects.bulk_create(
            [CellResult(cell_id=cell_id, team_id=team_id, dataset="digits", proxy_key=proxy_key, best_trial=trial,
                        best_reward=reward, params=trial.params, mult_adds=trial.mult_adds, trials_count=count)
             for (cell_id, team_id), (reward, trial, count) in best.items()], batch_size=2_000)
        with connection.cursor() as cursor:  # ids were given: move PostgreSQL's sequences past them
            for sql in connection.ops.sequence_reset_sql(no_style(), [Cell, Trial]):
                cursor.execute(sql)
    print(f"  {len(pool):,} cells, {len(trials):,} trials and {len(best):,} cell results inserted "
          f"in {time.perf_counter() - t1:.1f} s")
    return {"user": user, "searches": [s.pk for s in searches if s.team_id == team.pk]}


REVIEW_TAGS = ("fast", "small", "needs-more-epochs", "odd", "baseline")


def populate_reviews(ids: dict, seed: int) -> None:
    """Review rows at scale for the bench team: a status for 20% of its cells (a quarter each
    candidate, shortlisted, approved, rejected), 1–3 ratings on 10%, 1–3 comments on 10%, one of
    5 tags on 10%, and a finished transfer for each of the 4 best cells (the compare view's)."""
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from webapp.cells.models import CellResult
    from webapp.reviews.models import CellTag, Comment, Rating, ReviewStatus, Tag
    from webapp.teams.models import Membership, Team
    from webapp.transfers.models import Transfer

    team = Team.objects.get(name=BENCH_TEAM)
    if ReviewStatus.objects.filter(team=team).exists():
        print("reusing the review rows already in the database")
        return
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed + 1)
    User = get_user_model()
    with transaction.atomic():
        reviewers = [ids["user"]]
        for i in range(2):
            reviewer = User.objects.create_user(username=f"bench-reviewer-{i}", password="bench-password-1")
            Membership.objects.create(team=team, user=reviewer)
            reviewers.append(reviewer)
        tags = [Tag.objects.create(team=team, name=name) for name in REVIEW_TAGS]
        cells = np.array(CellResult.objects.filter(team=team).order_by("id").values_list("cell_id", flat=True)
                         .distinct())
        statuses = [s.value for s in ReviewStatus.Status]
        picked = rng.permutation(cells)
        fifth, tenth = len(cells) // 5, len(cells) // 10
        ReviewStatus.objects.bulk_create(
            [ReviewStatus(team=team, cell_id=int(c), status=statuses[i % 4]) for i, c in enumerate(picked[:fifth])],
            batch_size=2_000)
        ratings, comments = [], []
        for c in rng.choice(cells, tenth, replace=False):
            for reviewer in reviewers[:int(rng.integers(1, 4))]:
                ratings.append(Rating(team=team, cell_id=int(c), user=reviewer, stars=int(rng.integers(1, 6))))
        for c in rng.choice(cells, tenth, replace=False):
            for n in range(int(rng.integers(1, 4))):
                comments.append(Comment(team=team, cell_id=int(c), author=reviewers[n],
                                        body=f"Comment {n} with **Markdown** and a [link](https://example.org/{c})."))
        Rating.objects.bulk_create(ratings, batch_size=2_000)
        Comment.objects.bulk_create(comments, batch_size=2_000)
        CellTag.objects.bulk_create([CellTag(tag=tags[i % len(tags)], cell_id=int(c))
                                     for i, c in enumerate(rng.choice(cells, tenth, replace=False))], batch_size=2_000)
        now = timezone.now()
        for result in CellResult.objects.filter(team=team).select_related("cell").order_by("-best_reward", "id")[:4]:
            Transfer.objects.create(team=team, owner=ids["user"], cell=result.cell, genotype=result.cell.genotype,
                                    cell_hash=result.cell.cell_hash, source_trial_id=result.best_trial_id,
                                    status=Transfer.Status.FINISHED, best_val_acc=0.95, final_val_acc=0.94,
                                    test_acc=0.93, finished_at=now)
    print(f"  review rows: {fifth:,} statuses, {len(ratings):,} ratings, {len(comments):,} comments, "
          f"{tenth:,} tagged cells, 4 transfers, in {time.perf_counter() - t0:.1f} s")


def populate_controller_updates(ids: dict, seed: int) -> None:
    """A policy update per 20 trials of each PPO search (NASNet's batch), as the control step
    saves them, for the analysis page's controller figure."""
    import numpy as np
    from django.db import transaction

    from webapp.analysis.models import ControllerUpdate
    from webapp.searches.models import Search

    searches = Search.objects.filter(pk__in=ids["searches"], strategy="ppo")
    if ControllerUpdate.objects.filter(search__in=searches).exists():
        print("reusing the controller updates already in the database")
        return
    rng = np.random.default_rng(seed + 2)
    rows = []
    for search in searches:
        count = search.trials_issued // 20
        entropy = np.linspace(20.0, 8.0, count) + rng.normal(0, 0.2, count)
        baseline = np.linspace(0.55, 0.85, count)
        rows += [ControllerUpdate(search=search, update=u, trials_told=20 * (u + 1), entropy=float(entropy[u]),
                                  loss=float(rng.normal(0, 0.01)), baseline=float(baseline[u]),
                                  mean_advantage=float(rng.normal(0, 0.02))) for u in range(count)]
    with transaction.atomic():
        ControllerUpdate.objects.bulk_create(rows, batch_size=2_000)
    print(f"  {len(rows):,} controller updates inserted")


# -- timing ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def endpoints(ids: dict) -> list[tuple[str, str, dict]]:
    """(label, url, extra request headers) of everything a user reads."""
    from webapp.trials.models import Trial

    searches = ids["searches"]
    big = searches[-1]  # the running one: live, with workers and pending trials
    count = Trial.objects.filter(search_id=big).count()
    deep = max(1, count // 25 // 2)  # halfway down the table
    trial = Trial.objects.filter(search_id=big, status=Trial.Status.FINISHED).order_by("-index").first()
    pair = f"{searches[0]},{searches[1]}" if len(searches) > 1 else str(searches[0])
    htmx = {"HTTP_HX_REQUEST": "true"}
    return [
        ("searches list", "/", {}),
        ("search detail", f"/searches/{big}/", {}),
        ("detail live partial (htmx)", f"/searches/{big}/live/", htmx),
        ("detail chart json", f"/searches/{big}/chart.json", {}),
        ("trials by reward, page 1", f"/searches/{big}/?sort=-reward", {}),
        (f"trials by reward, page {deep}", f"/searches/{big}/?sort=-reward&page={deep}", {}),
        ("trial detail", f"/trials/{trial.pk}/", {}),
        ("compare 2 searches, top 1,5,25", f"/searches/compare/?searches={pair}&top=1,5,25", {}),
        ("best cells", "/cells/", {}),
        ("GET /api/searches/", "/api/searches/", {}),
        ("GET /api/searches/{id}/", f"/api/searches/{big}/", {}),
        ("GET /api/searches/{id}/trials/?status=finished", f"/api/searches/{big}/trials/?status=finished", {}),
        ("  … its next cursor page", "next:", {}),
        ("GET /api/cells/", "/api/cells/", {}),
        ("GET /api/compare/ (2 searches)", f"/api/compare/?searches={pair}&top=1,5,25", {}),
        *review_endpoints(),
        *analysis_endpoints(big),
    ]


def analysis_endpoints(search_id: int) -> list[tuple[str, str, dict]]:
    """The analysis page of the running search, each figure's JSON, and both exports."""
    base = f"/searches/{search_id}/analysis/"
    return [
        ("analysis page", base, {}),
        ("analysis: learning curves json", f"{base}curves.json", {}),
        ("analysis: reward against cost json", f"{base}cost.json", {}),
        ("analysis: op frequencies json", f"{base}ops.json", {}),
        ("analysis: controller json", f"{base}controller.json", {}),
        ("analysis: trials as CSV (streamed)", f"{base}trials.csv", {}),
        ("analysis: trials as Parquet", f"{base}trials.parquet", {}),
    ]


def _body(response) -> bytes:
    """The whole response, a streamed one read to its end (its time is in the reading)."""
    return response.content if not response.streaming else b"".join(response.streaming_content)


def review_endpoints() -> list[tuple[str, str, dict]]:
    """The review queue (first page, a deep page, each filter) and the side-by-side of 4 cells."""
    from django.contrib.auth import get_user_model
    from django.core.paginator import Paginator

    from webapp.cells.models import CellResult
    from webapp.reviews.selectors import review_queue_for_user
    from webapp.teams.models import Team

    team = Team.objects.get(name=BENCH_TEAM)
    user = get_user_model().objects.get(username=BENCH_USER)
    deep = max(1, Paginator(review_queue_for_user(user=user), 25).num_pages // 2)
    search = (CellResult.objects.filter(team=team).order_by("-best_reward", "id").values_list(
        "best_trial__search_id", flat=True).first())
    best = list(CellResult.objects.filter(team=team).order_by("-best_reward", "id").values_list(
        "cell__cell_hash", flat=True)[:4])
    cells = ",".join(best)
    return [
        ("review queue", "/reviews/", {}),
        (f"review queue, page {deep}", f"/reviews/?page={deep}", {}),
        ("review queue, shortlisted", "/reviews/?status=shortlisted", {}),
        ("review queue, tag fast", "/reviews/?tag=fast", {}),
        ("review queue, one search", f"/reviews/?search={search}", {}),
        ("GET /api/reviews/queue/", "/api/reviews/queue/", {}),
        ("compare 4 cells", f"/reviews/compare/?cells={cells}", {}),
        ("GET /api/reviews/compare/ (4 cells)", f"/api/reviews/compare/?cells={cells}", {}),
    ]


def time_endpoints(client, items, repeat: int, explain: bool) -> list[dict]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    rows, previous = [], None
    for label, url, headers in items:
        if url == "next:":  # the cursor the previous API answer handed out
            url = previous.json()["next"]
            url = url[url.index("/api/"):]
        # The first request of each endpoint (caches cold, e.g. a cell not drawn yet) counts the SQL.
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.get(url, **headers)
            cold = time.perf_counter() - start
        captured = queries.captured_queries  # read now: the next request clears the log
        if response.status_code != 200:
            raise SystemExit(f"{label}: {url} answered {response.status_code}")
        body = _body(response)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            _body(client.get(url, **headers))
            times.append(time.perf_counter() - start)
        slowest_sql = max(captured, key=lambda q: float(q["time"]), default=None)
        rows.append({"label": label, "url": url, "cold": cold * 1e3, "median": statistics.median(times) * 1e3,
                     "p95": percentile(times, 0.95) * 1e3, "queries": len(captured), "bytes": len(body),
                     "slowest_sql": slowest_sql})
        if explain and slowest_sql and connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN QUERY PLAN " + slowest_sql["sql"])
                plan = "; ".join(r[-1] for r in cursor.fetchall())
            print(f"  {label}: slowest SQL {float(slowest_sql['time']) * 1e3:.1f} ms: {slowest_sql['sql'][:300]}")
            print(f"    plan: {plan}")
        previous = response
    return rows


def human_bytes(n: int) -> str:
    for limit, suffix in ((1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= limit:
            return f"{n / limit:.1f} {suffix}"
    return f"{n} B"


def print_table(rows: list[dict]) -> None:
    print()
    print("| endpoint | median ms | p95 ms | first ms | SQL queries | response |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['label']} | {r['median']:.1f} | {r['p95']:.1f} | {r['cold']:.1f} | {r['queries']} | "
              f"{human_bytes(r['bytes'])} |")


# -- side by side: before and after ----------------------------------------------------------


def search_list_joined(*, user):
    """search_list_for_user as first written (commit 7e7669f): counts by a join and GROUP BY."""
    from django.db.models import Count, Max, Q

    from webapp.searches.models import Search
    from webapp.trials.models import Trial

    return (
        Search.objects.filter(team__members=user)
        .select_related("owner", "team")
        .annotate(
            trials_done=Count("trials", filter=Q(trials__status__in=Trial.DONE)),
            trials_running=Count("trials", filter=Q(trials__status=Trial.Status.RUNNING)),
            best_reward=Max("trials__reward"),
        )
    )


def cell_result_list_joined(*, user):
    """cell_result_list_for_user before this bench: the teams through a join with the memberships."""
    from webapp.cells.models import CellResult

    return CellResult.objects.filter(team__members=user).select_related("cell", "best_trial__search").order_by(
        "-best_reward", "id")


def side_by_side(label: str, before, after, rounds: int) -> dict:
    """Median seconds of `before()` and `after()`, rounds alternating; they must agree."""
    first_before, first_after = before(), after()
    if first_before != first_after:
        raise SystemExit(f"{label}: before and after disagree")
    times_before, times_after = [], []
    for _ in range(rounds):
        for fn, times in ((before, times_before), (after, times_after)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    b, a = statistics.median(times_before) * 1e3, statistics.median(times_after) * 1e3
    return {"label": label, "before": b, "after": a}


def ratios(ids: dict, rounds: int) -> list[dict]:
    from django.core.paginator import Paginator
    from django.db import connection

    from webapp.cells.selectors import cell_result_list_for_user
    from webapp.searches.models import Search
    from webapp.searches.selectors import search_list_for_user
    from webapp.trials.selectors import trial_list_for_search

    user = ids["user"]
    out = []

    def list_page(selector):
        def run():
            qs = selector(user=user).order_by("-created_at", "-id")
            page = Paginator(qs, 25).get_page(1)
            return [(s.pk, s.trials_done, s.trials_running, s.owner.username) for s in page]
        return run

    out.append(side_by_side("searches list page: join + GROUP BY (before) vs correlated subqueries (now)",
                            list_page(search_list_joined), list_page(search_list_for_user), rounds))

    def cells_page(selector, number: int):
        def run():
            page = Paginator(selector(user=user), 25).get_page(number)
            return [(r.pk, r.cell.cell_hash, r.best_trial.search.name) for r in page]
        return run

    cells = Paginator(cell_result_list_for_user(user=user), 25).num_pages
    for number in sorted({1, max(1, cells // 2)}):
        out.append(side_by_side(f"best cells, page {number}: teams by a join (before) vs team ids first (now)",
                                cells_page(cell_result_list_joined, number),
                                cells_page(cell_result_list_for_user, number), rounds))

    # The review queue's count: COUNT(*) of the page's queryset (a status probe per result of the
    # team) against review_queue_count (the team's results less the decided ones).
    from webapp.reviews.selectors import review_queue_count, review_queue_for_user

    for filters in ({}, {"status": "shortlisted"}, {"tag": "fast"}):
        name = ", ".join(f"{k}={v}" for k, v in filters.items()) or "awaiting review"
        out.append(side_by_side(f"review queue count ({name}): COUNT of the queryset (before) vs from the review "
                                f"tables' side (now)",
                                lambda f=filters: review_queue_for_user(user=user, **f).count(),
                                lambda f=filters: review_queue_count(user=user, **f), rounds))

    # The trials table sorted by reward: ORDER BY reward DESC, index over one search's trials.
    search = Search.objects.get(pk=ids["searches"][-1])
    index_sql = {"create": 'CREATE INDEX IF NOT EXISTS bench_trial_search_reward_index ON trials_trial '
                           '(search_id, reward DESC, "index")',
                 "drop": "DROP INDEX IF EXISTS bench_trial_search_reward_index"}

    def trials_page(number: int):
        def run():
            qs = trial_list_for_search(search=search, ordering="-reward").select_related("reused_from")
            page = Paginator(qs, 25).get_page(number)
            return [t.pk for t in page]
        return run

    count = search.trials.count()
    for number in (1, max(1, count // 25 // 2)):
        fn = trials_page(number)
        times = {"without": [], "with": []}
        results = {}
        for _ in range(rounds):
            for side in ("without", "with"):
                if side == "with":
                    with connection.cursor() as cursor:
                        cursor.execute(index_sql["create"])
                start = time.perf_counter()
                results[side] = fn()
                times[side].append(time.perf_counter() - start)
                if side == "with":
                    with connection.cursor() as cursor:
                        cursor.execute(index_sql["drop"])
        if results["without"] != results["with"]:
            raise SystemExit("trials page: the index changed the rows")
        out.append({"label": f"trials by reward, page {number}: indexes of the models (before) vs "
                             f"+ index (search, -reward, index) (after)",
                    "before": statistics.median(times["without"]) * 1e3,
                    "after": statistics.median(times["with"]) * 1e3})
    return out


def compare_breakdown(ids: dict) -> None:
    """Where the comparison's time goes: reading the trials, the top-k curves, the JSON."""
    import json

    from searchcore.compare import topk_curves
    from webapp.searches.models import Search
    from webapp.searches.selectors import compare_curves
    from webapp.trials.models import Trial

    searches = list(Search.objects.filter(pk__in=ids["searches"][:2]).order_by("id"))
    t0 = time.perf_counter()
    rows = [list(s.trials.order_by("index").values_list("cell_hash", "reward", "status")) for s in searches]
    t1 = time.perf_counter()
    for trials in rows:
        topk_curves(((h, r if st == Trial.Status.FINISHED else None) for h, r, st in trials), [1, 5, 25])
    t2 = time.perf_counter()
    data = compare_curves(searches=searches, ks=[1, 5, 25])
    t3 = time.perf_counter()
    text = json.dumps(data)
    t4 = time.perf_counter()
    print(f"\ncompare of 2 searches ({sum(map(len, rows)):,} trials), top 1,5,25: reading the trials "
          f"{(t1 - t0) * 1e3:.0f} ms, top-k curves {(t2 - t1) * 1e3:.0f} ms, compare_curves in all "
          f"{(t3 - t2) * 1e3:.0f} ms, json.dumps {(t4 - t3) * 1e3:.0f} ms for {len(text) / 2**20:.1f} MiB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100_000, help="trials in all, spread over the searches")
    parser.add_argument("--searches", type=int, default=5)
    parser.add_argument("--cells", type=int, default=None,
                        help="random cells the trials draw from (default: the 90%% of trials that are new cells)")
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per endpoint (after one cold one)")
    parser.add_argument("--db", help="SQLite file to fill and reuse (default: a temporary file, deleted after; "
                                     "with DATABASE_URL set and no --db, that database)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary database file")
    parser.add_argument("--explain", action="store_true", help="print each endpoint's slowest SQL and its plan")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.searches < 2 or args.trials < args.searches * 20:
        parser.error("need at least 2 searches and 20 trials per search")
    args.cells = args.cells or max(1, args.trials * 9 // 10)
    args.cleanup, args.db_path = False, None

    started = time.perf_counter()
    where = configure(args)
    from django.core.management import call_command
    from django.test import Client

    try:
        print(f"database: {where}")
        call_command("migrate", verbosity=0)
        ids = populate(args)
        populate_reviews(ids, args.seed)
        populate_controller_updates(ids, args.seed)
        client = Client()
        client.force_login(ids["user"])
        start = time.perf_counter()
        client.get("/accounts/login/")  # the process's first request imports the URLconf and every view
        print(f"first request of the process (imports the views): {(time.perf_counter() - start) * 1e3:.0f} ms")
        print(f"timing {args.repeat} requests per endpoint (after one cold request that counts the SQL)")
        rows = time_endpoints(client, endpoints(ids), args.repeat, args.explain)
        print_table(rows)
        print()
        print("side by side, same run, rounds alternating (median ms):")
        print()
        print("| what | before ms | after ms | speed-up |")
        print("|---|---:|---:|---:|")
        for r in ratios(ids, max(args.repeat, 3)):
            print(f"| {r['label']} | {r['before']:.1f} | {r['after']:.1f} | {r['before'] / r['after']:.1f}× |")
        compare_breakdown(ids)
        print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")
    finally:
        if args.cleanup and not args.keep and args.db_path:
            from django.db import connections

            connections.close_all()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{args.db_path}{suffix}").unlink(missing_ok=True)
        elif args.db_path:
            print(f"database kept at {args.db_path}")


if __name__ == "__main__":
    main()
