"""Data migrations, run for real: back to the schema before them, rows as the old code wrote
them, then forward again with Django's MigrationExecutor."""

import io

import pytest
import torch
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

import searchcore.spaces.nasnet.genotype as genotype_module
from searchcore.spaces import create_space
from searchcore.spaces.nasnet import CANONICAL_HASH_VERSION, Block, Cell, Genotype
from searchcore.strategies import create_strategy
from webapp import dispatch
from webapp.searches.models import Search
from webapp.searches.services.control import search_advance
from webapp.teams.services import user_create
from webapp.trials.models import Trial

pytestmark = pytest.mark.django_db(transaction=True)

#: Where the schema stood before this change's migrations.
BEFORE = [("cells", "0002_initial"), ("trials", "0001_initial"), ("searches", "0001_initial")]


@pytest.fixture
def migrate():
    """`migrate(targets)` moves the test database there and returns the historical apps; the
    database is back at the latest migrations afterwards, whatever the test did."""

    def to(targets):
        executor = MigrationExecutor(connection)
        executor.migrate(targets)
        executor.loader.build_graph()
        return executor.loader.project_state(targets).apps

    yield to
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def latest(migrate):
    return migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def version_1(genotype: Genotype, monkeypatch) -> tuple[str, dict]:
    """The hash and canonical JSON hash version 1 gave: only an add block's branches sorted."""

    def renumbered(block, new_index):
        branches = [(new_index[i], op) for i, op in zip(block.inputs, block.ops)]
        if block.combine == "add":
            branches.sort()
        (a, op_a), (b, op_b) = branches
        return Block(inputs=(a, b), ops=(op_a, op_b), combine=block.combine)

    with monkeypatch.context() as patch:
        patch.setattr(genotype_module, "_renumbered", renumbered)
        return genotype.canonical_hash(), genotype.canonical().to_dict()


def cell(*blocks: tuple[tuple[int, int], tuple[str, str], str]) -> Genotype:
    normal = Cell(blocks=tuple(Block(inputs, ops, combine) for inputs, ops, combine in blocks))
    return Genotype(normal=normal, reduction=Cell(blocks=(Block((0, 1), ("identity", "avg_pool_3x3")),)))


MAX, SEP = "max_pool_3x3", "sep_conv_3x3"
#: A's concat block lists its branches in sorted order, so version 1 already gave it the version 2
#: hash; B is A with them swapped. E and F each swap a different one of two concat blocks, so
#: neither had its version 2 hash. C only adds.
GENOTYPES = {
    "A": cell(((0, 1), (MAX, SEP), "concat")),
    "B": cell(((1, 0), (SEP, MAX), "concat")),
    "E": cell(((1, 0), (SEP, MAX), "concat"), ((0, 2), ("identity", "conv_1x1"), "concat")),
    "F": cell(((0, 1), (MAX, SEP), "concat"), ((2, 0), ("conv_1x1", "identity"), "concat")),
    "C": cell(((1, 0), (SEP, MAX), "add")),
}


def test_cells_equal_up_to_a_concat_blocks_branch_order_are_rehashed_and_merged(migrate, monkeypatch):
    assert CANONICAL_HASH_VERSION == 2  # what 0003_canonical_hash_v2 migrates to
    old = {name: version_1(genotype, monkeypatch) for name, genotype in GENOTYPES.items()}
    new = {name: genotype.canonical_hash() for name, genotype in GENOTYPES.items()}
    assert old["A"][0] == new["A"] == new["B"] != old["B"]
    assert len({old["E"][0], old["F"][0], new["E"]}) == 3 and new["E"] == new["F"]
    assert old["C"][0] == new["C"]

    user = user_create(username="alice", password="alice-password-1", team_name="team-a")
    apps = migrate(BEFORE)
    Search, Trial = apps.get_model("searches", "Search"), apps.get_model("trials", "Trial")
    CellRow, CellResult = apps.get_model("cells", "Cell"), apps.get_model("cells", "CellResult")
    team_id = user.teams.get().pk
    searches = {key: Search.objects.create(team_id=team_id, owner_id=user.pk, space="nasnet", strategy="random",
                                           dataset="digits", proxy={}, proxy_key=key, budget=10)
                for key in ("p1", "p2")}
    cells = {name: CellRow.objects.create(cell_hash=old[name][0], genotype=old[name][1], space="nasnet")
             for name in ("A", "B", "E", "F", "C")}
    trials, index = {}, iter(range(100))

    def trial(name, key, reward):
        row = Trial.objects.create(search=searches[key], index=next(index), cell=cells[name[0]],
                                   genotype=GENOTYPES[name[0]].to_dict(), cell_hash=old[name[0]][0],
                                   status="finished", reward=reward, finished_at="2026-01-01T00:00:00Z")
        trials[name] = row
        return row

    def result(name, key, best, count):
        CellResult.objects.create(cell=cells[name], team_id=team_id, dataset="digits", proxy_key=key,
                                  best_trial=trials[best], best_reward=trials[best].reward, trials_count=count)

    trial("A", "p1", 0.5), trial("B1", "p1", 0.8), trial("B2", "p1", 0.6)
    trial("E", "p1", 0.3), trial("F", "p2", 0.4), trial("C", "p1", 0.2)
    result("A", "p1", "A", 1), result("B", "p1", "B1", 2), result("E", "p1", "E", 1)
    result("F", "p2", "F", 1), result("C", "p1", "C", 1)

    apps = latest(migrate)
    Trial, CellRow = apps.get_model("trials", "Trial"), apps.get_model("cells", "Cell")
    CellResult = apps.get_model("cells", "CellResult")
    assert sorted(CellRow.objects.values_list("pk", flat=True)) == sorted(cells[n].pk for n in ("A", "E", "C"))
    for name, kept in (("A", "A"), ("E", "E"), ("C", "C")):
        row = CellRow.objects.get(pk=cells[kept].pk)
        assert row.cell_hash == new[name]
        assert row.genotype == GENOTYPES[name].canonical().to_dict()  # the version 2 canonical form
    for name, kept in (("A", "A"), ("B1", "A"), ("B2", "A"), ("E", "E"), ("F", "E"), ("C", "C")):
        row = Trial.objects.get(pk=trials[name].pk)
        assert (row.cell_id, row.cell_hash) == (cells[kept].pk, new[kept])
        assert row.genotype == GENOTYPES[name[0]].to_dict()  # what the strategy proposed, as it was
    merged = CellResult.objects.get(cell_id=cells["A"].pk)  # A's and B's results for team-a under p1
    assert (merged.best_trial_id, merged.best_reward, merged.trials_count) == (trials["B1"].pk, 0.8, 3)
    by_proxy = dict(CellResult.objects.filter(cell_id=cells["E"].pk).values_list("proxy_key", "best_trial_id"))
    assert by_proxy == {"p1": trials["E"].pk, "p2": trials["F"].pk}  # different proxies stay apart
    assert CellResult.objects.count() == 4


def test_searches_that_rejected_repeats_keep_doing_so(migrate, monkeypatch):
    """A strategy state saved before `reject_duplicates` existed loads after the migration, and the
    search goes on under the services as they are now."""
    monkeypatch.setattr(dispatch, "queue_train_trials", lambda trials: None)
    user = user_create(username="alice", password="alice-password-1", team_name="team-a")
    options = {"population_size": 3, "sample_size": 2}
    old_strategy = create_strategy("evolution", create_space("nasnet"), seed=0, **options, reject_duplicates=True,
                                   identity_probability=0.0)
    proposals = [old_strategy.ask() for _ in range(2)]
    state = old_strategy.state_dict()
    state["format"] = "cellsearch.strategy/1"
    state["hparams"] = {k: v for k, v in state["hparams"].items()
                        if k not in ("reject_duplicates", "identity_probability")}
    saved = io.BytesIO()
    torch.save(state, saved)

    apps = migrate(BEFORE)
    OldSearch, OldTrial = apps.get_model("searches", "Search"), apps.get_model("trials", "Trial")
    OldCell = apps.get_model("cells", "Cell")
    common = {"team_id": user.teams.get().pk, "owner_id": user.pk, "space": "nasnet", "dataset": "digits",
              "proxy": {}, "proxy_key": "p", "budget": 4, "parallelism": 2}
    running = OldSearch.objects.create(**common, strategy="evolution", strategy_options=options,
                                       strategy_state=saved.getvalue(), trials_issued=2, status="running")
    queued = OldSearch.objects.create(**common, strategy="ppo", strategy_options={"batch_size": 4})
    for proposal in proposals:
        row = OldCell.objects.create(cell_hash=proposal.cell_hash, genotype=proposal.genotype.canonical().to_dict(),
                                     space="nasnet")
        OldTrial.objects.create(search=running, index=proposal.trial_id, cell=row, cell_hash=proposal.cell_hash,
                                genotype=proposal.genotype.to_dict(), status="pending")

    latest(migrate)
    running, queued = Search.objects.get(pk=running.pk), Search.objects.get(pk=queued.pk)
    assert running.strategy_options == {**options, "reject_duplicates": True, "identity_probability": 0.0}
    assert queued.strategy_options == {"batch_size": 4}  # no state yet: it starts under today's defaults
    Trial.objects.filter(search=running, index=0).update(status="finished", reward=0.5)
    search_advance(search_id=running.pk)
    running.refresh_from_db()
    assert running.status == Search.Status.RUNNING, running.error
    assert running.trials_issued == 3 and running.trials.get(index=0).told
    assert len(set(running.trials.values_list("cell_hash", flat=True))) == 3


def test_a_searchs_dataset_leaves_its_stored_proxy_and_its_proxy_key_stays(migrate, make_search, user):
    """Rows written when the proxy kept a copy of the dataset: after the migration the column
    holds it, the proxy does not, the workers' config is the same, and a search made today under
    the same settings has the same key (so it reuses the old search's results)."""
    from searchcore.proxy import ProxyConfig
    from searchcore.spaces.registry import sha256_of

    settings = {"epochs": 1, "cells": 1, "filters": 48, "batch_size": 128}
    full = ProxyConfig.from_dict({**settings, "dataset": "digits"}).to_dict()
    apps = migrate([("searches", "0002_strategy_options_before_repeats")])
    OldSearch = apps.get_model("searches", "Search")
    common = {"team_id": user.teams.get().pk, "owner_id": user.pk, "budget": 4}
    old = OldSearch.objects.create(**common, dataset="digits", proxy=full, proxy_key=sha256_of(full))
    # The proxy's copy is what trained and what the key hashes: it wins over a column that disagrees.
    odd = OldSearch.objects.create(**common, dataset="digits", proxy={**full, "dataset": "cifar10"}, proxy_key="k")
    untouched = OldSearch.objects.create(**common, dataset="cifar10", proxy={"epochs": 1}, proxy_key="k2")

    latest(migrate)
    old, odd, untouched = (Search.objects.get(pk=s.pk) for s in (old, odd, untouched))
    assert (old.dataset, old.proxy) == ("digits", {k: v for k, v in full.items() if k != "dataset"})
    assert old.proxy_config == ProxyConfig.from_dict(full)
    assert (odd.dataset, "dataset" in odd.proxy) == ("cifar10", False)
    assert (untouched.dataset, untouched.proxy) == ("cifar10", {"epochs": 1})
    assert make_search(proxy=settings).proxy_key == old.proxy_key

    apps = migrate([("searches", "0002_strategy_options_before_repeats")])
    assert apps.get_model("searches", "Search").objects.get(pk=old.pk).proxy == full


def test_members_from_before_roles_become_owners(migrate):
    """teams 0002_membership_role: every member before roles had every right, so each becomes
    an owner; a membership made afterwards takes the model's default, member."""
    apps = migrate([("teams", "0001_initial")])
    OldUser, OldTeam = apps.get_model("auth", "User"), apps.get_model("teams", "Team")
    OldMembership = apps.get_model("teams", "Membership")
    team = OldTeam.objects.create(name="old-team")
    old = [OldUser.objects.create(username=name) for name in ("dora", "eve")]
    for someone in old:
        OldMembership.objects.create(team=team, user=someone)

    latest(migrate)
    from webapp.teams.models import Membership

    assert sorted(Membership.objects.filter(team_id=team.pk).values_list("user__username", "role")) == [
        ("dora", "owner"), ("eve", "owner")]
    newcomer = user_create(username="frank", password="pw-123456789", team_name="old-team")
    assert Membership.objects.get(user=newcomer).role == "member"
