"""Writes for cells: each unique genotype once, and each team's best result per proxy setting."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from webapp.cells.models import Cell, CellResult


@transaction.atomic
def cell_get_or_create(*, cell_hash: str, genotype: dict, space: str) -> Cell:
    """The cell with this canonical hash, made on first sight (`genotype` should be canonical)."""
    try:
        with transaction.atomic():
            cell, _ = Cell.objects.get_or_create(cell_hash=cell_hash, defaults={"genotype": genotype, "space": space})
    except IntegrityError:  # another process made it between our read and our insert
        cell = Cell.objects.get(cell_hash=cell_hash)
    return cell


@transaction.atomic
def cell_result_update(*, trial) -> CellResult | None:
    """Count a finished, trained trial in its team's result for the cell under the search's proxy,
    keeping the best reward. Trials whose result was copied (`reused_from`) and trials without a
    reward change nothing. Call it once per trial (trial_run does, right after finishing it)."""
    if trial.reward is None or trial.reused_from_id is not None:
        return None
    search = trial.search
    key = {"cell_id": trial.cell_id, "team_id": search.team_id, "proxy_key": search.proxy_key}
    best = {"best_trial": trial, "best_reward": trial.reward, "params": trial.params, "mult_adds": trial.mult_adds}
    result = CellResult.objects.select_for_update().filter(**key).first()
    if result is None:
        try:
            with transaction.atomic():
                return CellResult.objects.create(**key, dataset=search.dataset, trials_count=1, **best)
        except IntegrityError:  # made meanwhile by another worker
            result = CellResult.objects.select_for_update().get(**key)
    result.trials_count += 1
    fields = ["trials_count", "updated_at"]
    if trial.reward > result.best_reward:
        for name, value in best.items():
            setattr(result, name, value)
        fields += list(best)
    result.save(update_fields=fields)
    return result
