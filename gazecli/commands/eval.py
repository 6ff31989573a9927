"""gaze eval"""

from __future__ import annotations

import typer

from gazecli.commands._options import settings_command
from gazecli.core.settings import EvalSettings

app = typer.Typer(name="eval", add_completion=False)


@settings_command(app, "eval", EvalSettings)
def evaluate(s: EvalSettings) -> None:
    """Score a prediction file, or run a checkpoint and score it, with the published GazeFollow /
    VideoAttentionTarget protocols."""
    from gazecli.commands._report import console, metrics_table, progress_bar
    from gazecli.core.stages.evaluate import evaluate_predictions

    with progress_bar("scoring", "persons") as update:
        result = evaluate_predictions(s, progress=update)
    if result["dataset"] == "videoatt":
        columns = ["dataset", "split", "n", "auc", "l2", "ap"]
    else:
        columns = ["dataset", "split", "n", "auc", "avg_l2", "min_l2"]
    title = s.predictions.name if s.predictions is not None else result["checkpoint"]
    console.print(metrics_table(title, [result], columns))
    for k, v in result["protocol"].items():
        if k != "dataset":
            console.print(f"  [dim]{k}: {v}[/]")
    if s.checkpoint is not None:
        console.print(f"wrote [bold]{result['out']}[/] and the predictions [bold]{result['predictions_file']}[/]")
    elif s.out is not None:
        console.print(f"wrote [bold]{s.out}[/]")
