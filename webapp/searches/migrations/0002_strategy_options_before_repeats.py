"""Searches that ran before strategies could repeat a cell keep running as they did.

Until `reject_duplicates` existed every strategy redrew a cell it had proposed before, and
evolution made no identity mutation. A search with a saved strategy state gets those settings
spelled out in its `strategy_options`, which is what the strategy rebuilt from them must match
when it loads that state (searchcore's `StrategyConfig.LEGACY_HPARAMS`, copied here as they were).
"""

from django.db import migrations

LEGACY_OPTIONS = {"reject_duplicates": True}
LEGACY_EVOLUTION_OPTIONS = {"identity_probability": 0.0}


def spell_out(apps, schema_editor):
    Search = apps.get_model("searches", "Search")
    for search in Search.objects.filter(strategy_state__isnull=False).only("strategy", "strategy_options"):
        legacy = {**LEGACY_OPTIONS, **(LEGACY_EVOLUTION_OPTIONS if search.strategy == "evolution" else {})}
        search.strategy_options = {**legacy, **search.strategy_options}
        search.save(update_fields=["strategy_options"])


def drop(apps, schema_editor):
    """Code from before this migration knows neither option."""
    Search = apps.get_model("searches", "Search")
    for search in Search.objects.only("strategy_options"):
        options = {k: v for k, v in search.strategy_options.items() if k not in {*LEGACY_OPTIONS, *LEGACY_EVOLUTION_OPTIONS}}
        if options != search.strategy_options:
            search.strategy_options = options
            search.save(update_fields=["strategy_options"])


class Migration(migrations.Migration):

    dependencies = [
        ("searches", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(spell_out, drop),
    ]
