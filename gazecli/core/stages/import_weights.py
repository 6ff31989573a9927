"""`gaze import-weights`: the authors' checkpoints as a gazecli run folder (docs/import-weights.md)."""

from __future__ import annotations

from gazecli.core.settings import ImportWeightsSettings


def run(settings: ImportWeightsSettings) -> dict:
    from gazecli.core.models.import_weights import import_weights

    return import_weights(settings.file, settings.kind, settings.out)
