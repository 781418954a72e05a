"""The best-cells list and a cell's review page as a reader sees them: the proxy in words, the
diagram previewed large on hover, and the cell drawn on its review page (issue 19, part 5)."""

from __future__ import annotations

import re

import pytest

from webapp.cells.models import CellResult
from webapp.cells.templatetags.cells import proxy_in_words
from webapp.searches.services import search_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def cell_result(user, make_trial, no_broker):
    """alice's best cell under a proxy that names F, and its result row."""
    search = search_create(user=user, name="words", space="nasnet", strategy="random", dataset="digits", budget=2,
                           parallelism=1, seed=0, proxy={"epochs": 1, "cells": 1, "filters": 48, "batch_size": 128})
    trial = make_trial(search, 0, reward=0.75)
    return CellResult.objects.create(cell=trial.cell, team=search.team, dataset="digits", proxy_key=search.proxy_key,
                                     best_trial=trial, best_reward=0.75)


@pytest.mark.parametrize(("proxy", "words"), [
    ({"epochs": 1, "cells": 1, "filters": 48, "batch_size": 128}, "1 cell, 48 filters, 1 epoch, batch 128"),
    ({"epochs": 20, "cells": 2, "filters": None, "base_filters": 16, "batch_size": 64},
     "2 cells, base 16 filters, 20 epochs, batch 64"),
    ({}, ""),
])
def test_proxy_in_words_spells_cells_filters_and_epochs_out(proxy, words):
    assert proxy_in_words(proxy) == words


def test_best_cells_spell_the_proxy_out_and_preview_the_diagram(client, user, cell_result):
    client.force_login(user)
    html = client.get("/cells/").content.decode()
    row = re.search(r'<tbody>(.*?)</tbody>', html, flags=re.DOTALL).group(1)
    assert "1 cell, 48 filters, 1 epoch, batch 128" in row
    assert cell_result.proxy_key not in html  # the key means nothing to a reader
    diagram = f"/api/cells/{cell_result.cell_id}/diagram.svg"
    assert f'<img class="thumb" src="{diagram}"' in row and f'<img class="thumb-preview" src="{diagram}"' in row


def test_a_cells_review_page_draws_it(client, user, cell_result):
    client.force_login(user)
    html = client.get(f"/cells/{cell_result.cell.cell_hash}/review/").content.decode()
    diagram = f"/api/cells/{cell_result.cell_id}/diagram.svg"
    assert re.search(rf'<section id="review-diagram".*<div class="diagram"><img src="{re.escape(diagram)}"', html,
                     flags=re.DOTALL)
    svg = client.get(diagram)
    assert svg.status_code == 200 and b"Reduction Cell" in svg.content and b"hidden state" in svg.content


def test_another_teams_review_page_and_diagram_are_404(client, other_user, cell_result):
    client.force_login(other_user)
    assert client.get(f"/cells/{cell_result.cell.cell_hash}/review/").status_code == 404
    assert client.get(f"/api/cells/{cell_result.cell_id}/diagram.svg").status_code == 404
