"""The new-transfer form: a preset and every TransferConfig setting (less the server's data root).
Shape and types only; the transfer service validates the rest (TransferConfig names its field)."""

from __future__ import annotations

import dataclasses

from django import forms
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from searchcore.data import DATASETS
from webapp.searches.forms import JSONObjectField

#: Labels and help for the settings (TransferConfig's fields; a blank field keeps the preset's value).
SETTING_HELP: dict[str, tuple[str, str]] = {
    "cells": ("Cells N", "N of N@F: normal cells per stack."),
    "filters": ("Filters F", "F of N@F: the penultimate layer's filters. Blank to give base filters instead."),
    "base_filters": ("Base filters", "Instead of F: filters per state in the first stack (DARTS's C)."),
    "epochs": ("Epochs", "Training epochs."),
    "batch_size": ("Batch size", ""),
    "lr": ("Learning rate", "Peak rate; cosine decay to 0 over all steps."),
    "momentum": ("Momentum", ""),
    "weight_decay": ("Weight decay", ""),
    "nesterov": ("Nesterov momentum", ""),
    "grad_clip": ("Gradient clip", "Max gradient norm."),
    "drop_path_keep": ("Drop-path keep", "ScheduledDropPath's keep probability at the end (1 = off)."),
    "cutout": ("Cutout", "Cutout square side in pixels (0 = off)."),
    "auxiliary_weight": ("Auxiliary weight", "Weight of the auxiliary head's loss (0 = no head)."),
    "label_smoothing": ("Label smoothing", ""),
    "seed": ("Seed", ""),
    "device": ("Device", "auto: the worker's GPU when it has one."),
    "amp": ("Mixed precision", "bf16 autocast on CUDA."),
    "channels_last": ("Channels last", "NHWC memory format on CUDA."),
    "dataset_options": ("Dataset options", 'Optional JSON, e.g. {"image_size": 32} for imagefolder.'),
}
#: Settings shown under "Advanced".
ADVANCED = ("momentum", "nesterov", "grad_clip", "label_smoothing", "device", "amp", "channels_last",
            "dataset_options")


class PresetBooleanSelect(forms.NullBooleanSelect):
    """yes / no, or blank for the preset's value."""

    def __init__(self, attrs=None):
        super().__init__(attrs)
        self.choices = [("unknown", "(preset)"), ("true", "yes"), ("false", "no")]


def _form_field(field: dataclasses.Field) -> forms.Field:
    label, help_text = SETTING_HELP.get(field.name, (field.name.replace("_", " ").capitalize(), ""))
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    kind = kind.replace(" ", "").removesuffix("|None")
    options = {"required": False, "label": label, "help_text": help_text}
    if kind == "int":
        return forms.IntegerField(**options)
    if kind == "float":
        return forms.FloatField(**options, widget=forms.NumberInput(attrs={"step": "any"}))
    if kind == "bool":
        return forms.NullBooleanField(**options, widget=PresetBooleanSelect())
    if kind.startswith(("dict", "Mapping")):
        return JSONObjectField(**options)
    return forms.CharField(**options)


class TransferCreateForm(forms.Form):
    name = forms.CharField(max_length=200, required=False,
                           widget=forms.TextInput(attrs={"placeholder": "e.g. best ppo cell on cifar10"}))
    preset = forms.ChoiceField(required=False, help_text="Fills the settings below; change any of them after.")
    dataset = forms.ChoiceField(initial="digits")

    def __init__(self, *args, **kwargs):
        from searchcore.transfer import TRANSFER_PRESETS
        from webapp.transfers.services import transfer_settable_fields

        super().__init__(*args, **kwargs)
        self.fields["preset"].choices = [("", "(none: the defaults)")] + [(n, n) for n in TRANSFER_PRESETS.names()]
        self.fields["dataset"].choices = [(n, f"{n}: {DATASETS.get(n).summary}") for n in DATASETS.names()]
        self.fields["dataset"].help_text = (
            f"cifar10 and imagefolder are read on the workers from {settings.CELLSEARCH_DATA_ROOT}/<dataset> "
            "(CELLSEARCH_DATA_ROOT).")
        self.setting_names = []
        for field in transfer_settable_fields():
            if field.name == "dataset":
                continue
            self.fields[field.name] = _form_field(field)
            self.setting_names.append(field.name)

    def basic_settings(self):
        return [self[name] for name in self.setting_names if name not in ADVANCED]

    def advanced_settings(self):
        return [self[name] for name in self.setting_names if name in ADVANCED]

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        overrides = {name: data[name] for name in self.setting_names
                     if data.get(name) is not None and data.get(name) != "" and data.get(name) != {}}
        return {"name": data["name"], "preset": data["preset"] or None, "dataset": data["dataset"],
                "overrides": overrides}

    def add_service_errors(self, error: ValidationError) -> None:
        """Show a service's ValidationError next to the field it names (TransferConfig's `field`)."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for key, errors in error.error_dict.items():
            field = key if key in self.fields else None
            for item in errors:
                message = " ".join(item.messages).removeprefix("transfer config: ")
                if field is None and key not in (NON_FIELD_ERRORS, "__all__", None):
                    message = f"{key}: {message}"
                self.add_error(field, message)
