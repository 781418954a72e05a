"""The search forms: shape, types and the service's bounds; the search services validate the rest."""

from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from searchcore.data import DATASETS
from searchcore.oneshot import SAMPLERS, SEARCH_OPTIONS
from searchcore.proxy import DEFAULT_FILTERS, FILTERS_PER_BASE_FILTER, MAX_SEED
from searchcore.proxy import INT_BOUNDS as PROXY_BOUNDS
from searchcore.spaces import SPACES
from searchcore.strategies import STRATEGIES
from webapp.searches.services.lifecycle import MAX_BUDGET, MAX_PARALLELISM, validate_search_config

#: Datasets the form offers, with the registry's own summary of each.
DATASET_CHOICES = [(name, f"{name}: {DATASETS.get(name).summary}") for name in DATASETS.names()]
#: Datasets whose files the workers read from CELLSEARCH_DATA_ROOT/<dataset>.
DATASETS_NEEDING_ROOT = {name for name in DATASETS.names() if DATASETS.get(name).needs_root}

#: The strategies the form offers: per-trial ones by name, then the one-shot samplers with the
#: registry's own summary of each.
STRATEGY_CHOICES = [
    ("Per trial: every cell sampled is trained", [(name, name) for name in STRATEGIES.names()]),
    ("One-shot: a supernet's shared weights rank the cells", [
        (name, f"{name}: {SAMPLERS.get(name).summary}") for name in SAMPLERS.names()]),
]

#: The proxy-training fields the form shows (each sets the ProxyConfig field of its name; a blank one is left out).
PROXY_FIELDS = ("epochs", "cells", "filters", "base_filters", "batch_size")


def _choices(names: list[str]) -> list[tuple[str, str]]:
    return [(name, name) for name in names]


class JSONObjectField(forms.CharField):
    """A textarea holding an optional JSON object (blank = {})."""

    widget = forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "mono"})

    def to_python(self, value):
        text = (super().to_python(value) or "").strip()
        if not text:
            return {}
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None
        except RecursionError:  # "[[[[..." nested deeper than the decoder's recursion limit
            raise ValidationError("Not valid JSON: nested too deeply.") from None
        except ValueError:  # a number of more digits than int() converts (sys.get_int_max_str_digits())
            raise ValidationError("Not valid JSON: a number has too many digits.") from None
        if not isinstance(data, dict):
            raise ValidationError('Must be a JSON object such as {"batch_size": 10}.')
        return data

    def prepare_value(self, value):
        if isinstance(value, dict):
            return json.dumps(value) if value else ""
        return value


def whole_number_field(low: int, high: int, *, step: int | None = None, **kwargs) -> forms.IntegerField:
    """An IntegerField bounded as the search service bounds it (its min/max go on the input), whose
    every message reads as the service's do: "must be a whole number from 1 to 1,000,000, got 0"."""
    rule = f"must be a whole number from {low:,} to {high:,}" + (f", a multiple of {step}" if step else "")
    got = f"{rule}, got %(value)s"
    messages = {"required": rule, "invalid": rule, "min_value": got, "max_value": got}
    validators = []
    if step:
        kwargs["widget"] = forms.NumberInput(attrs={"step": step})

        def multiple_of_step(value: int) -> None:  # one message when out of range too, not two
            if low <= value <= high and value % step:
                raise ValidationError(got, code="step_size", params={"value": value})

        validators.append(multiple_of_step)
    return forms.IntegerField(min_value=low, max_value=high, error_messages=messages, validators=validators, **kwargs)


#: N@F as the paper defines it and as `searchcore.models.nasnet` builds the proxy network.
NATF_HELP = (
    "The paper writes a network as N@F, e.g. “4 @ 64 … where 4 and 64 indicate the number of cell repeats and "
    "the number of filters in the penultimate layer of the network” (Zoph et al. 2018, §4). A trial's network is "
    "the CIFAR stem, N normal cells, a reduction cell, N normal cells, a reduction cell and N normal cells; each "
    "reduction doubles the filters. Every state of a first-stack cell has the base filters, of a last-stack cell "
    "4 × base, so a normal cell that concatenates k states ends at F = 4 × k × base (NASNet-A: k = 6, F = 24 × base)."
)
FILTERS_LOW, FILTERS_HIGH = PROXY_BOUNDS["filters"]
BASE_LOW, BASE_HIGH = PROXY_BOUNDS["base_filters"]


class SearchCreateForm(forms.Form):
    """Every field is bounded as the service bounds it, so a submit reports all of them at once
    (the view adds the service's own checks of the fields that parsed: `service_check`)."""

    name = forms.CharField(max_length=200, required=False,
                           widget=forms.TextInput(attrs={"placeholder": "e.g. digits ppo, seed 0"}))
    space = forms.ChoiceField(initial="nasnet", help_text="What a cell may contain.")
    strategy = forms.ChoiceField(
        choices=STRATEGY_CHOICES, initial="ppo",
        help_text="How the next cell is chosen. A one-shot sampler trains one supernet whose weights every cell "
                  "shares, then trains its best cells (the budget) standalone; its options are under Advanced options.")
    dataset = forms.ChoiceField(choices=DATASET_CHOICES, initial="digits")
    budget = whole_number_field(1, MAX_BUDGET, initial=20,
                                help_text=f"Trials (child networks) to train in all: 1 to {MAX_BUDGET:,}. For a "
                                          "one-shot search, the number of top cells its supernet ranks that are "
                                          "then trained standalone (at most its final_samples), as NASNet's search "
                                          "ended: “the top 250 architectures are then chosen to train until "
                                          "convergence” (Zoph et al. 2018, appendix A.3).")
    parallelism = whole_number_field(1, MAX_PARALLELISM, initial=1,
                                     help_text=f"Trials training at the same time: 1 to {MAX_PARALLELISM:,}, "
                                               "at most the budget.")
    epochs = whole_number_field(*PROXY_BOUNDS["epochs"], initial=10,
                                help_text="Training epochs per child: {:,} to {:,}.".format(*PROXY_BOUNDS["epochs"]))
    cells = whole_number_field(*PROXY_BOUNDS["cells"], initial=2, label="Cells N",
                               help_text="N, the normal cells per stack (3 stacks): {} to {}.".format(
                                   *PROXY_BOUNDS["cells"]))
    filters = whole_number_field(
        FILTERS_LOW, FILTERS_HIGH, step=FILTERS_PER_BASE_FILTER, required=False, initial=DEFAULT_FILTERS,
        label="Filters F",
        help_text=f"F of N@F as NASNet-A's cell (k = 6) ends at, a multiple of {FILTERS_PER_BASE_FILTER} from "
                  f"{FILTERS_LOW} to {FILTERS_HIGH:,}: fixes every cell's base filters at F / "
                  f"{FILTERS_PER_BASE_FILTER}, so a cell concatenating fewer states ends below F. "
                  "Leave blank to give base filters instead.")
    base_filters = whole_number_field(
        BASE_LOW, BASE_HIGH, required=False, label="Base filters",
        help_text=f"Instead of F: each state's filters in the first stack (slim's num_conv_filters, DARTS's C), "
                  f"{BASE_LOW} to {BASE_HIGH}. The search fixes the base for every cell, so every op is equally "
                  "wide and a cell whose normal cell concatenates k states ends at F = 4 × k × base.")
    batch_size = whole_number_field(*PROXY_BOUNDS["batch_size"], initial=64, label="Batch size",
                                    help_text="Images per training step: {:,} to {:,}.".format(
                                        *PROXY_BOUNDS["batch_size"]))
    seed = whole_number_field(0, MAX_SEED, initial=0, help_text=f"0 to {MAX_SEED:,}.")
    keep_checkpoints = forms.BooleanField(required=False, help_text="Store each child's weights for download.")
    strategy_options = JSONObjectField(
        required=False, label="Strategy options",
        help_text=f'Optional JSON, e.g. {{"batch_size": 5}} for ppo. A one-shot search takes {", ".join(SEARCH_OPTIONS)} '
                  '(epochs: the supernet\'s, the proxy\'s by default), e.g. {"controller": "reinforce", "epochs": 10}.')
    space_options = JSONObjectField(required=False, label="Space options",
                                    help_text='Optional JSON, e.g. {"num_blocks": 3}.')

    natf_help = NATF_HELP

    def __init__(self, *args, teams=(), **kwargs):
        """`teams`: the teams the user may launch a search in. With several, the form asks which
        (a `team` field, required); with one, the search goes there without asking; with none
        (a user in no team yet), the service makes the user's own."""
        super().__init__(*args, **kwargs)
        self.teams = list(teams)
        if len(self.teams) > 1:
            self.fields["team"] = forms.TypedChoiceField(
                coerce=int, choices=[("", "— pick a team —")] + [(t.pk, t.name) for t in self.teams],
                help_text="The team the search belongs to: its members see and steer it.",
                error_messages={
                    "required": "You are in several teams: pick the one this search belongs to.",
                    "invalid_choice": "Pick one of your teams where your role may launch searches.",
                })
            self.order_fields(["team"])
        self.fields["space"].choices = _choices(SPACES.names())
        root = settings.CELLSEARCH_DATA_ROOT
        self.fields["dataset"].help_text = (
            "What each child network is trained on for its reward. cifar10 and imagefolder read their "
            f"files on the workers from {root}/<dataset> (CELLSEARCH_DATA_ROOT)."
        )

    def proxy(self) -> dict:
        """The proxy-training settings for `search_create(proxy=...)` (of those that parsed)."""
        return {name: self.cleaned_data[name] for name in PROXY_FIELDS if self.cleaned_data.get(name) is not None}

    def service_check(self) -> None:
        """After `is_valid()` found errors: run the search service's checks on the fields that
        parsed, so one submit reports every problem (budget 0, parallelism over it, epochs −1 and
        F 10,000,000 used to come back one per submit). A field the form faulted keeps its own message."""
        data = self.cleaned_data
        try:
            validate_search_config(
                space=data.get("space"), strategy=data.get("strategy"), dataset=data.get("dataset"),
                # a budget out of range still bounds the parallelism (budget 0, parallelism 5: both named)
                budget=data.get("budget", self._whole_number_given("budget")), parallelism=data.get("parallelism"),
                seed=data.get("seed"),
                proxy=self.proxy(), space_options=data.get("space_options") or {},
                strategy_options=data.get("strategy_options") or {},
            )
        except ValidationError as error:
            self.add_service_errors(error, besides=set(self.errors))

    def _whole_number_given(self, name: str) -> int | None:
        try:
            return int(self.data.get(self.add_prefix(name), ""))
        except ValueError:
            return None

    def error_summary(self) -> list[tuple[str | None, str, str]]:
        """(field name or None, label, message) for every error, in the form's field order: the
        list at the top of the page, each linking to its field."""
        summary: list[tuple[str | None, str, str]] = [(None, "", str(e)) for e in self.non_field_errors()]
        for bound in self:
            summary += [(bound.name, str(bound.label), str(e)) for e in bound.errors]
        return summary

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data["name"], "space": data["space"], "strategy": data["strategy"], "dataset": data["dataset"],
            "budget": data["budget"], "parallelism": data["parallelism"], "seed": data["seed"],
            "proxy": self.proxy(), "space_options": data["space_options"] or None,
            "strategy_options": data["strategy_options"] or None, "keep_checkpoints": data["keep_checkpoints"],
            "team": data["team"] if "team" in self.fields else (self.teams[0].pk if self.teams else None),
        }

    def add_service_errors(self, error: ValidationError, *, besides: frozenset[str] | set[str] = frozenset()) -> None:
        """Show a service's ValidationError next to the fields it names ("proxy.epochs" → epochs),
        leaving out those on the fields in `besides` (which have errors of their own already)."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for key, errors in error.error_dict.items():
            field = self._field_for(key)
            if field in besides:
                continue
            for item in errors:
                message = " ".join(item.messages).removeprefix("proxy config: ")
                if field is None and key not in (NON_FIELD_ERRORS, "__all__", None):
                    message = f"{key}: {message}"
                self.add_error(field, message)

    def _field_for(self, key: str | None) -> str | None:
        if not key or key in (NON_FIELD_ERRORS, "__all__"):
            return None
        name = key.split(".", 1)[1] if key.startswith("proxy.") else key
        name = name.split(".", 1)[0]  # "strategy_options.batch_size" → strategy_options
        return name if name in self.fields else None


class _SteeringForm(forms.Form):
    """A form of the steering card: a service's ValidationError goes next to the field it names
    (through `SERVICE_FIELDS` for the service's names the form spells otherwise); the others
    (`status`) above the form."""

    SERVICE_FIELDS: dict[str, str] = {}

    def add_service_errors(self, error: ValidationError) -> None:
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for key, errors in error.error_dict.items():
            field = self.SERVICE_FIELDS.get(key, key)
            for item in errors:
                self.add_error(field if field in self.fields else None, " ".join(item.messages))


class SearchSteerForm(_SteeringForm):
    """A running search's parallelism and budget, as the search page changes them; the steering
    service checks the bounds (never below the trials issued) and the state."""

    parallelism = forms.IntegerField(min_value=1, help_text="Trials training at the same time.")
    budget = forms.IntegerField(min_value=1, help_text="Trials in all; extending a finished search runs it again.")


class SearchEnqueueForm(_SteeringForm):
    """A cell given by hand, as the search page's steering card takes it: the steering service
    parses it (JSON or DARTS) and checks it against the search's space."""

    SERVICE_FIELDS = {"darts": "genotype", "cell_hash": "genotype"}

    genotype = forms.CharField(
        label="Genotype JSON or DARTS string", max_length=20_000, strip=True,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text="The search's next trial trains this cell, before anything its strategy draws.")


class SearchForkForm(_SteeringForm):
    """A fork of a search from chosen trials (the fork page); blanks take the parent's values."""

    trials = forms.CharField(
        label="Start from trials", max_length=2000,
        help_text="Indices of finished trials, separated by commas: the fork's first trials (their results "
                  "are copied) and, for evolution, its first population.")
    name = forms.CharField(max_length=200, required=False)
    budget = forms.IntegerField(min_value=1, required=False, help_text="Trials in all; blank: the parent's.")
    parallelism = forms.IntegerField(min_value=1, required=False, help_text="Blank: the parent's.")
    seed = forms.IntegerField(min_value=0, required=False, help_text="Blank: a seed of its own.")
    strategy_options = JSONObjectField(
        required=False, label="Strategy options",
        help_text="Over the parent's; evolution's population_size, say. Not a controller's hidden_size or num_layers.")

    def clean_trials(self) -> list[int]:
        text = self.cleaned_data["trials"]
        try:
            return [int(part) for part in text.replace(" ", ",").split(",") if part]
        except ValueError:
            raise ValidationError("Give trial indices separated by commas, e.g. 3, 7.") from None

    def service_kwargs(self) -> dict:
        """The filled fields, for `search_fork`: a blank one takes the parent's value."""
        return {key: value for key, value in self.cleaned_data.items() if value not in (None, "", {})}


class SearchSeedsForm(_SteeringForm):
    """The compare page's "Run N seeds of each strategy": a base search (one of those compared)
    and the strategies; the seeds service checks the bounds and skips seeds that exist."""

    base = forms.IntegerField(label="Settings of", help_text="Space, dataset, proxy, budget and parallelism.")
    strategies = forms.MultipleChoiceField(choices=_choices(STRATEGIES.names()), widget=forms.CheckboxSelectMultiple)
    seeds = forms.IntegerField(label="Seeds", initial=3, help_text="Seeds 0 to N−1 of each strategy.")
