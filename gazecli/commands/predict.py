"""gaze predict"""

from __future__ import annotations

import typer

from gazecli.commands._options import settings_command
from gazecli.core.settings import PredictSettings

app = typer.Typer(name="predict", add_completion=False)


@settings_command(app, "predict", PredictSettings)
def predict(s: PredictSettings) -> None:
    """Predict where people look in an image, a folder or a video: heatmap, point, overlay, JSON lines."""
    from rich.table import Table

    from gazecli.commands._report import console, print_outputs, progress_bar
    from gazecli.core.stages.predict import run_predict

    with progress_bar("predicting", "inputs") as update:
        result = run_predict(s, update)
    table = Table(title="gaze" + (" (heads detected with OpenCV's face cascade)" if result["detected"] else ""),
                  title_justify="left")
    for c in ("input", "person", "head box (px)", "point (px)", "point (norm)", "in frame"):
        table.add_column(c)
    for r in result["records"][:40]:
        where = r.get("image") or f"frame {r['frame']}"
        table.add_row(str(where).rsplit("/", 1)[-1], str(r["person"]), ", ".join(f"{v:.0f}" for v in r["head_box_xyxy_px"]),
                      ", ".join(f"{v:.0f}" for v in r["point_xy_px"]), ", ".join(f"{v:.3f}" for v in r["point_xy_norm"]),
                      "-" if r["inout"] is None else f"{r['inout']:.2f}")
    console.print(table)
    if len(result["records"]) > 40:
        console.print(f"... {len(result['records']) - 40} more in predictions.jsonl")
    if result["no_face"]:
        console.print(f"[yellow]no head found in {len(result['no_face'])} input(s)[/] (first: {result['no_face'][0]}); "
                      f"give boxes with --head x,y,w,h or --heads-csv")
    print_outputs(f"outputs in {result['out']}", result["files"])
