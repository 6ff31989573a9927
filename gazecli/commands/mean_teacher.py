"""gaze mean-teacher"""

from __future__ import annotations

import typer

from gazecli.commands._options import settings_command
from gazecli.core.settings import MeanTeacherSettings

app = typer.Typer(name="mean-teacher", add_completion=False)


@settings_command(app, "mean-teacher", MeanTeacherSettings, resumable=True)
def mean_teacher(s: MeanTeacherSettings) -> None:
    """Train the diffusion prior with Mean Teacher: supervised x0 loss on labelled persons plus a KL consistency
    between the student and its EMA teacher on every person; both networks are saved and evaluated."""
    from gazecli.commands._report import RichReporter, console, metrics_table, print_outputs
    from gazecli.core.stages.mean_teacher import mean_teacher as run

    result = run(s, RichReporter("mean-teacher"))
    if result.test_metrics:
        rows = [{"network": name + (" (selected)" if name == s.select_network else ""),
                 **{k: result.test_metrics.get(f"{name}_{k}") for k in ("n", "auc", "avg_l2", "min_l2")}}
                for name in ("teacher", "student")]
        console.print(metrics_table(f"test, best weights ({s.select_network} {s.select_metric} on {s.select_on}), "
                                    f"{s.inference_steps}-step DDIM from noise", rows,
                                    ["network", "n", "auc", "avg_l2", "min_l2"]))
    print_outputs(f"run folder {result.run_dir}", result.files)
