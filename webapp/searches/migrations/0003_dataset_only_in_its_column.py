"""A search's dataset is stored once, in its `dataset` column: it leaves the stored `proxy`
(which kept a copy since search_create wrote both).

The proxy's copy is what the workers trained with and what `proxy_key` hashes, so where the two
ever differ it wins. `proxy_key` itself is unchanged: it still hashes the full config, dataset
included, so results stay comparable across the migration.
"""

from django.db import migrations

BATCH = 500


def move_dataset_to_its_column(apps, schema_editor):
    Search = apps.get_model("searches", "Search")
    changed = []
    for search in Search.objects.filter(proxy__has_key="dataset").only("dataset", "proxy").iterator(BATCH):
        search.dataset = search.proxy.pop("dataset")
        changed.append(search)
    Search.objects.bulk_update(changed, ["dataset", "proxy"], batch_size=BATCH)


def copy_dataset_back_into_proxy(apps, schema_editor):
    """Code from before this migration reads the dataset from the proxy."""
    Search = apps.get_model("searches", "Search")
    changed = []
    for search in Search.objects.only("dataset", "proxy").iterator(BATCH):
        search.proxy = {**search.proxy, "dataset": search.dataset}
        changed.append(search)
    Search.objects.bulk_update(changed, ["proxy"], batch_size=BATCH)


class Migration(migrations.Migration):
    dependencies = [("searches", "0002_strategy_options_before_repeats")]

    operations = [migrations.RunPython(move_dataset_to_its_column, copy_dataset_back_into_proxy)]
