"""gaze train-diffusion"""

from __future__ import annotations

import typer

from gazecli.commands._options import settings_command
from gazecli.core.settings import TrainDiffusionSettings

app = typer.Typer(name="train-diffusion", add_completion=False)


@settings_command(app, "train-diffusion", TrainDiffusionSettings, resumable=True)
def train_diffusion(s: TrainDiffusionSettings) -> None:
    """Train the diffusion annotation prior (a conditional heatmap DDPM, x0-prediction) on the labelled split;
    validation samples every person from pure noise with --inference-steps DDIM steps."""
    from gazecli.commands._report import RichReporter, console, metrics_table, print_outputs
    from gazecli.core.stages.train_diffusion import train_diffusion as run

    result = run(s, RichReporter("train-diffusion"))
    if result.test_metrics:
        console.print(metrics_table(f"test, best weights ({s.select_metric} on {s.select_on}), "
                                    f"{s.inference_steps}-step DDIM from noise",
                                    [{"split": "test", **result.test_metrics}], ["split", "n", "auc", "avg_l2", "min_l2"]))
    print_outputs(f"run folder {result.run_dir}", result.files)
