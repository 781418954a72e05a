"""Rehash stored NASNet cells and trials under canonical hash version 2, merging the cells it
makes equal.

Version 2 sorts a concat block's two branches as version 1 sorted an add block's
(searchcore.spaces.nasnet.CANONICAL_HASH_VERSION), so cells stored apart because a concat block's
branches came in the other order are one cell now. The cell that keeps its row takes the others'
trials; per team and proxy it keeps the better of their best results and the sum of their
trained-trial counts, which is what cells.services.cell_result_update would have kept had they
always been one cell. Cells without a concat block, and NAS-v1 macro cells, hash as before.

Only searchcore's genotype module is imported: torch-free, like the web process. The merge
cannot be undone, so going back leaves the version 2 hashes (version 1 code then stores a
cell whose hash changed as a new cell the next time it is proposed).
"""

from django.db import migrations

from searchcore.spaces.nasnet import NASNET_FORMAT, Genotype


def _has_concat_block(genotype: dict) -> bool:
    return any(block.get("combine") == "concat" for name in ("normal", "reduction") for block in genotype[name])


def _merge_result(result, kept) -> None:
    """Fold `result` (of a merged cell) into `kept` (the same team and proxy, the kept cell)."""
    kept.trials_count += result.trials_count
    ours = (-result.best_reward, result.best_trial.finished_at, result.best_trial_id)
    theirs = (-kept.best_reward, kept.best_trial.finished_at, kept.best_trial_id)
    if ours < theirs:  # a better reward, or the same one reached first (cell_result_update keeps the first)
        for name in ("best_trial_id", "best_reward", "params", "mult_adds"):
            setattr(kept, name, getattr(result, name))
    kept.save()
    result.delete()


def rehash(apps, schema_editor):
    Cell = apps.get_model("cells", "Cell")
    CellResult = apps.get_model("cells", "CellResult")
    Trial = apps.get_model("trials", "Trial")

    groups: dict[str, list] = {}  # new hash -> the cells whose hash or canonical genotype changes
    for cell in Cell.objects.order_by("pk").iterator():
        if cell.genotype.get("format") != NASNET_FORMAT or not _has_concat_block(cell.genotype):
            continue
        genotype = Genotype.from_dict(cell.genotype)
        canonical = genotype.canonical().to_dict()
        new_hash = genotype.canonical_hash()
        if (new_hash, canonical) != (cell.cell_hash, cell.genotype):
            groups.setdefault(new_hash, []).append((cell, canonical))

    for new_hash, members in groups.items():
        # A cell already stored under the new hash keeps its row (the hash is unique); otherwise
        # the oldest does. Any cell stored under `new_hash` has it as its new hash too, so no
        # other group can hold it.
        holder = Cell.objects.filter(cell_hash=new_hash).first()
        keeper = holder or members[0][0]
        for cell, _ in members:
            if cell.pk == keeper.pk:
                continue
            Trial.objects.filter(cell_id=cell.pk).update(cell_id=keeper.pk)
            for result in CellResult.objects.filter(cell_id=cell.pk).select_related("best_trial"):
                kept = (CellResult.objects.filter(cell_id=keeper.pk, team_id=result.team_id,
                                                  proxy_key=result.proxy_key).select_related("best_trial").first())
                if kept is None:
                    CellResult.objects.filter(pk=result.pk).update(cell_id=keeper.pk)
                else:
                    _merge_result(result, kept)
            cell.delete()
        keeper.cell_hash = new_hash
        keeper.genotype = members[0][1]
        keeper.save(update_fields=["cell_hash", "genotype"])
        Trial.objects.filter(cell_id=keeper.pk).update(cell_hash=new_hash)


class Migration(migrations.Migration):

    dependencies = [
        ("cells", "0002_initial"),
        ("trials", "0002_waiting_status"),
    ]

    operations = [
        migrations.RunPython(rehash, migrations.RunPython.noop),
    ]
