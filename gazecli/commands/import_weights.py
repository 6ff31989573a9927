"""gaze import-weights"""

from __future__ import annotations

import typer

from gazecli.commands._options import settings_command
from gazecli.core.settings import ImportWeightsSettings

app = typer.Typer(name="import-weights", add_completion=False)


@settings_command(app, "import-weights", ImportWeightsSettings)
def import_weights(s: ImportWeightsSettings) -> None:
    """Import the authors' released weights (Chong et al.'s VAT, VAT-GC, GCDR's diffusion teacher)
    into a run folder that --checkpoint, --teacher-checkpoint and --init accept: read without
    running code, every key mapped by an explicit table, every shape checked."""
    from gazecli.commands._report import console
    from gazecli.core.stages.import_weights import run

    result = run(s)
    console.print(f"imported {result['tensors']} tensors as {result['kind']} ({result['parameters']:,} parameters) "
                  f"into [bold]{result['weights']}[/]")
    if result["filled"]:
        console.print(f"{len(result['filled'])} BatchNorm counters absent from the file were set to 0")
