"""Matched seeds for Figure 6: from one search, the same search under several strategies and
seeds, so that a comparison has the seeds its 95% interval needs (searchcore.compare.MIN_SEEDS).

The paper compares RL with random search "given an equivalent amount of computational
resources": every search made here has the base search's space, dataset, proxy, budget and
parallelism, and differs only in its strategy and seed.

Imported by the web process: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from searchcore.strategies import STRATEGIES
from webapp.searches.models import Search
from webapp.searches.services.lifecycle import search_create
from webapp.teams.permissions import require_perm

#: Seeds per strategy one call may ask for (seeds 0..N−1).
MAX_SEEDS = 10
#: Searches one call may ask for in all (seeds × strategies), made or found.
MAX_SEED_SEARCHES = 30


@dataclass
class SeedRuns:
    """What `search_seeds_create` made and found: `created` are new searches; `existing` are the
    team's searches that already had a (strategy, seed) with the same settings, which were skipped."""

    created: list[Search]
    existing: list[Search]

    @property
    def searches(self) -> list[Search]:
        """All of them, by strategy and seed: the searches to compare."""
        return sorted(self.created + self.existing, key=lambda s: (s.strategy, s.seed, s.pk))


def _matching(base: Search, strategy: str, strategy_options: dict) -> dict[int, Search]:
    """The team's searches with `base`'s settings under `strategy`, by seed (the first made):
    not forks (they start from another search's state) and not failed or cancelled ones (their
    curves stop short)."""
    found = (Search.objects.filter(team_id=base.team_id, space=base.space, dataset=base.dataset,
                                   proxy_key=base.proxy_key, budget=base.budget, parallelism=base.parallelism,
                                   strategy=strategy, forked_from__isnull=True)
             .exclude(status__in=(Search.Status.FAILED, Search.Status.CANCELLED)).order_by("created_at", "pk"))
    matches: dict[int, Search] = {}
    for search in found:
        if search.space_options == base.space_options and search.strategy_options == strategy_options:
            matches.setdefault(search.seed, search)
    return matches


@transaction.atomic
def search_seeds_create(*, user, base: Search, strategies: list[str], seeds: int) -> SeedRuns:
    """Seeds 0..`seeds`−1 of each of `strategies`, with `base`'s space, dataset, proxy, budget and
    parallelism (the base's strategy keeps its strategy options; others take their defaults), in
    `base`'s team. A (strategy, seed) the team already has with those settings is skipped and
    returned in `existing`. PermissionDenied unless the user may launch searches in the team;
    ValidationError naming `seeds` or `strategies` otherwise."""
    require_perm(user, "searches.launch", base.team)
    is_int = isinstance(seeds, int) and not isinstance(seeds, bool)
    if not is_int or not 1 <= seeds <= MAX_SEEDS:
        raise ValidationError({"seeds": [f"must be a whole number from 1 to {MAX_SEEDS}, got {seeds!r}"]})
    if not isinstance(strategies, list) or not strategies:
        raise ValidationError({"strategies": ["pick at least one strategy"]})
    unknown = [name for name in strategies if name not in STRATEGIES.names()]
    if unknown:
        raise ValidationError({"strategies": [f"unknown strategy {', '.join(map(repr, unknown))}; "
                                              f"known: {', '.join(STRATEGIES.names())}"]})
    strategies = list(dict.fromkeys(strategies))
    if seeds * len(strategies) > MAX_SEED_SEARCHES:
        raise ValidationError({"seeds": [f"{seeds} seeds of {len(strategies)} strategies is "
                                         f"{seeds * len(strategies)} searches; at most {MAX_SEED_SEARCHES} at once"]})
    created: list[Search] = []
    existing: list[Search] = []
    base_name = base.name or f"search {base.pk}"
    for strategy in strategies:
        options = base.strategy_options if strategy == base.strategy else {}
        matches = _matching(base, strategy, options)
        for seed in range(seeds):
            if seed in matches:
                existing.append(matches[seed])
                continue
            created.append(search_create(
                user=user, team=base.team_id, name=f"{base_name} · {strategy} seed {seed}"[:200], space=base.space,
                space_options=base.space_options, strategy=strategy, strategy_options=options,
                dataset=base.dataset, proxy=base.proxy, budget=base.budget, parallelism=base.parallelism,
                seed=seed, keep_checkpoints=base.keep_checkpoints,
            ))
    return SeedRuns(created=created, existing=existing)
