"""A search's analysis page (issue 19): each figure's data from trial rows, the Pareto front, op
frequencies, the controller's updates saved by the control step, and the exports read back."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pyarrow.parquet as pq
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from searchcore.strategies import STRATEGY_CONFIGS
from webapp.analysis import selectors
from webapp.analysis.models import ControllerUpdate
from webapp.searches.models import Search
from webapp.searches.services.control import search_advance
from webapp.trials.models import Trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def figure(client: Client, name: str, search: Search) -> dict:
    response = client.get(reverse(f"analysis:{name}", args=[search.pk]))
    assert response.status_code == 200
    return response.json()


def epochs(*val_accs: float) -> list[dict]:
    return [{"epoch": i, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1 - acc, "val_acc": acc, "lr": 0.1,
             "seconds": 1.0, "images_per_second": 100.0} for i, acc in enumerate(val_accs)]


def genotype(op: str, inputs: tuple[int, int]) -> dict:
    """Both cells: one block of two `op` branches reading `inputs`, and a second reading block 0."""
    blocks = [{"inputs": list(inputs), "ops": [op, op], "combine": "add"},
              {"inputs": [1, 2], "ops": ["identity", "max_pool_3x3"], "combine": "add"}]
    return {"format": "cellsearch.nasnet/1", "normal": blocks, "reduction": blocks}


def test_the_page_links_its_figures_and_exports_and_the_search_page_links_it(client, make_search):
    search = make_search()
    page = client.get(reverse("analysis:page", args=[search.pk])).content.decode()
    for name in ("curves", "cost", "ops", "controller", "trials-csv", "trials-parquet"):
        assert reverse(f"analysis:{name}", args=[search.pk]) in page
    assert "js/analysis.js" in page and "<script>" not in page  # CSP: no inline script
    detail = client.get(reverse("searches:detail", args=[search.pk])).content.decode()
    assert reverse("analysis:page", args=[search.pk]) in detail


def test_learning_curves_show_the_best_and_an_even_sample(client, make_search, make_trial, monkeypatch):
    monkeypatch.setattr(selectors, "CURVES_MAX_TRIALS", 4)
    monkeypatch.setattr(selectors, "CURVES_BEST", 2)
    search = make_search(budget=10)
    Search.objects.filter(pk=search.pk).update(trials_issued=10)
    search.refresh_from_db()
    for index in range(8):
        make_trial(search, index, reward=index / 10, epochs=epochs(0.1, index / 10))
    make_trial(search, 8, status=Trial.Status.FAILED)
    make_trial(search, 9, reward=0.99, reused_from=Trial.objects.get(search=search, index=7))  # a copy
    data = figure(client, "curves", search)
    assert data["issued"] == 10
    # the best two (7, 6), then every 5th trial issued (10 / (4 − 2)) that trained: 0 and 5
    assert [(t["index"], t["best"]) for t in data["trials"]] == [(0, False), (5, False), (6, True), (7, True)]
    assert data["trials"][3]["val_acc"] == [0.1, 0.7]
    assert data["trials"][3]["val_loss"] == pytest.approx([0.9, 0.3])
    assert data["trials"][3]["epoch"] == [0, 1]


def test_pareto_front_keeps_the_trials_nothing_beats(make_search, make_trial):
    search = make_search(budget=8)
    points = [(100, 0.5), (200, 0.7), (150, 0.4), (200, 0.6), (50, 0.2), (300, 0.7), (400, 0.9), (100, 0.5)]
    for index, (params, reward) in enumerate(points):
        make_trial(search, index, reward=reward, params=params)
    # 150 costs more than 100 for less, 200 @ 0.6 loses to 200 @ 0.7, 300 @ 0.7 is no better than
    # 200 @ 0.7, and trial 7 ties trial 0 (the earlier one stays)
    front = selectors.pareto_front(search.trials.all(), "params").values_list("params", "reward", "index")
    assert list(front) == [(50, 0.2, 4), (100, 0.5, 0), (200, 0.7, 1), (400, 0.9, 6)]
    assert not selectors.pareto_front(search.trials.all(), "mult_adds").exists()  # none has mult-adds


def test_reward_against_cost_marks_each_front(client, make_search, make_trial):
    search = make_search(budget=5)
    rows = [(0, 0.5, 1000, 9000), (1, 0.7, 3000, 8000), (2, 0.6, 2000, 10000), (3, 0.4, 500, None)]
    for index, reward, params, mult_adds in rows:
        make_trial(search, index, reward=reward, params=params, mult_adds=mult_adds)
    make_trial(search, 4, status=Trial.Status.FAILED, params=1)
    data = figure(client, "cost", search)
    assert data["params"]["front"] == {"cost": [500, 1000, 2000, 3000], "reward": [0.4, 0.5, 0.6, 0.7],
                                       "index": [3, 0, 2, 1]}
    assert data["params"]["points"]["index"] == []
    assert data["mult_adds"]["front"]["index"] == [1]  # the cheapest is also the best
    assert data["mult_adds"]["points"] == {"cost": [9000, 10000], "reward": [0.5, 0.6], "index": [0, 2]}


def test_op_frequencies_per_window_of_known_genotypes(client, make_search, make_trial, make_cell, monkeypatch):
    monkeypatch.setattr(selectors, "OPS_WINDOWS", 2)
    search = make_search(budget=4)
    cells = [make_cell(genotype("sep_conv_3x3", (0, 1))), make_cell(genotype("sep_conv_5x5", (1, 1)))]
    for index, cell in enumerate([cells[0], cells[0], cells[0], cells[1]]):
        make_trial(search, index, cell=cell, status=Trial.Status.FAILED if index == 2 else Trial.Status.FINISHED)
    data = figure(client, "ops", search)
    assert (data["window"], data["start"], data["sampled"]) == (2, [0, 2], [2, 2])
    normal = data["cells"]["normal"]
    # per trial: four op choices, two of them the block-0 op; four input choices
    assert normal["ops"] == {"identity": [0.25, 0.25], "max_pool_3x3": [0.25, 0.25],
                             "sep_conv_3x3": [0.5, 0.25], "sep_conv_5x5": [0.0, 0.25]}
    assert normal["inputs"] == {"0": [0.25, 0.125], "1": [0.5, 0.625], "2": [0.25, 0.25]}
    assert data["cells"]["reduction"] == normal


def test_op_frequencies_are_not_for_the_macro_space_and_controller_stats_not_for_random(client, make_search):
    search = make_search()
    data = figure(client, "controller", search)
    assert data == {"available": False, "reason": data["reason"]} and "no controller" in data["reason"]
    Search.objects.filter(pk=search.pk).update(space="macro")
    data = figure(client, "ops", search)
    assert not data["available"] and "macro space" in data["reason"]


@pytest.mark.parametrize("strategy", ["reinforce", "ppo"])
def test_the_control_step_saves_the_controllers_updates(client, make_search, no_broker, strategy):
    search = make_search(strategy=strategy, strategy_options={"batch_size": 2}, budget=6, parallelism=3)
    search_advance(search_id=search.pk)
    assert not ControllerUpdate.objects.exists()
    finished = timezone.now()
    Trial.objects.filter(search=search, index__in=[0, 1]).update(status=Trial.Status.FINISHED, reward=0.4,
                                                                 finished_at=finished)
    Trial.objects.filter(search=search, index=2).update(status=Trial.Status.FAILED, finished_at=finished)
    search_advance(search_id=search.pk)
    Trial.objects.filter(search=search, index__in=[3, 4]).update(status=Trial.Status.FINISHED, reward=0.8,
                                                                 finished_at=finished)
    search_advance(search_id=search.pk)
    rows = list(ControllerUpdate.objects.filter(search=search).values_list("update", "trials_told", "baseline"))
    decay = STRATEGY_CONFIGS[strategy]().baseline_decay
    second_baseline = decay * (decay * 0.4 + (1 - decay) * 0.8) + (1 - decay) * 0.8
    assert rows == [(0, 2, pytest.approx(0.4)), (1, 5, pytest.approx(second_baseline))]
    data = figure(client, "controller", search)
    assert data["available"] and data["update"] == [0, 1] and data["trials_told"] == [2, 5]
    assert data["mean_advantage"][0] == pytest.approx(0.0)
    assert all(value > 0 for value in data["entropy"])


def _export_rows(search: Search) -> list[dict]:
    """The trials as the exports should hold them, straight from the rows."""
    return [{"index": t.index, "status": t.status, "cell_hash": t.cell_hash, "reward": t.reward, "val_acc": t.val_acc,
             "params": t.params, "mult_adds": t.mult_adds, "gpu_seconds": t.gpu_seconds, "device": t.device,
             "started_at": t.started_at, "finished_at": t.finished_at, "genotype": t.genotype,
             "reused_from": t.reused_from_id} for t in search.trials.order_by("index")]


@pytest.fixture
def exported_search(make_search, make_trial):
    search = make_search(budget=3)
    start = timezone.now().replace(microsecond=123456)
    source = make_trial(search, 0, reward=0.75, params=12345, mult_adds=678910, gpu_seconds=12.5, device="H100",
                        started_at=start, finished_at=start + timedelta(seconds=12.5))
    make_trial(search, 1, reward=0.75, reused_from=source, started_at=start, finished_at=start)
    make_trial(search, 2, status=Trial.Status.RUNNING, started_at=start)
    return search


def test_csv_export_streams_every_trial(client, exported_search):
    response = client.get(reverse("analysis:trials-csv", args=[exported_search.pk]))
    assert response.streaming and response["Content-Disposition"].endswith(f'search-{exported_search.pk}-trials.csv"')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    expected = _export_rows(exported_search)
    assert [list(row) for row in rows] == [list(selectors.EXPORT_COLUMNS)] * 3
    for row, want in zip(rows, expected, strict=True):
        assert json.loads(row.pop("genotype")) == want.pop("genotype")
        assert row == {key: "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
                       for key, value in want.items()}


def test_parquet_export_reads_back_equal_to_the_rows(client, exported_search):
    response = client.get(reverse("analysis:trials-parquet", args=[exported_search.pk]))
    assert response["Content-Disposition"].endswith(f'search-{exported_search.pk}-trials.parquet"')
    table = pq.read_table(io.BytesIO(b"".join(response.streaming_content)))
    assert table.column_names == list(selectors.EXPORT_COLUMNS)
    rows = table.to_pylist()
    for row in rows:
        row["genotype"] = json.loads(row["genotype"])
    assert rows == _export_rows(exported_search)


def test_exports_of_a_search_without_trials_hold_the_header(client, make_search):
    search = make_search()
    response = client.get(reverse("analysis:trials-csv", args=[search.pk]))
    assert b"".join(response.streaming_content).decode().splitlines() == [",".join(selectors.EXPORT_COLUMNS)]
    response = client.get(reverse("analysis:trials-parquet", args=[search.pk]))
    table = pq.read_table(io.BytesIO(b"".join(response.streaming_content)))
    assert (table.num_rows, table.column_names) == (0, list(selectors.EXPORT_COLUMNS))


def test_figures_of_a_search_without_trials_are_empty(client, make_search):
    search = make_search(strategy="ppo")
    assert figure(client, "curves", search)["trials"] == []
    assert figure(client, "cost", search)["params"] == {"points": {"cost": [], "reward": [], "index": []},
                                                        "front": {"cost": [], "reward": [], "index": []}}
    ops = figure(client, "ops", search)
    assert (ops["start"], ops["cells"]["normal"]["ops"]) == ([], {})
    assert figure(client, "controller", search)["update"] == []
