"""gaze predict"""

from __future__ import annotations

import typer

from gazecli.commands._options import settings_command
from gazecli.core.settings import PredictSettings

app = typer.Typer(name="predict", add_completion=False)


@settings_command(app, "predict", PredictSettings)
def predict(s: PredictSettings) -> None:
    """Predict where people look in an image, a folder or a video: heatmap, point, overlay, JSON lines."""
    from rich.markup import escape
    from rich.table import Table

    from gazecli.commands._report import console, print_outputs, progress_bar
    from gazecli.core.stages.predict import run_predict

    def warn(text: str) -> None:
        console.print(f"[yellow]warning: {escape(text)}[/]")

    with progress_bar("predicting", "frames" if s.source.suffix.lower() in (".mp4", ".avi", ".mov", ".mkv", ".webm",
                                                                              ".m4v") else "inputs") as update:
        result = run_predict(s, update, warn)
    detected = f" (heads detected with {result['detector']})" if result["detected"] else ""
    if result["kind"] == "video":
        table = Table(title="gaze per person track" + detected, title_justify="left")
        for c in ("track", "frames", "first", "last", "mean point (px)", "mean in frame"):
            table.add_column(c, justify="right")
        for t in result["tracks"]:
            table.add_row(str(t["track"]), str(t["frames"]), str(t["first_frame"]), str(t["last_frame"]),
                          ", ".join(f"{v:.0f}" for v in t["mean_point_xy_px"]),
                          "-" if t["mean_inout"] is None else f"{t['mean_inout']:.2f}")
        console.print(table)
        console.print(f"{result['n_frames']} frames predicted in {result['seconds']:.1f} s "
                      f"({result['frames_per_s']:.1f} frames/s); {len(result['tracks'])} person track(s)")
        if result["no_face"]:
            console.print(f"[yellow]no head in {len(result['no_face'])} frame(s)[/]; give boxes with --head x,y,w,h")
        print_outputs(f"outputs in {result['out']}", result["files"])
        return
    table = Table(title="gaze" + detected, title_justify="left")
    for c in ("input", "person", "head box (px)", "point (px)", "point (norm)", "in frame"):
        table.add_column(c)
    records = result["records"]
    for r in records[:40]:
        table.add_row(escape(r["path"]), str(r["person"]), ", ".join(f"{v:.0f}" for v in r["head_box_xyxy_px"]),
                      ", ".join(f"{v:.0f}" for v in r["point_xy_px"]), ", ".join(f"{v:.3f}" for v in r["point_xy_norm"]),
                      "-" if r["inout"] is None else f"{r['inout']:.2f}")
    console.print(table)
    if len(records) > 40:
        console.print(f"... {len(records) - 40} more in predictions.jsonl")
    done = result["n_inputs"] - result["n_errors"] - result["n_skipped"]
    parts = [f"{result['n_inputs']} input(s): {done} predicted ({len(records)} person(s) in all)"]
    if result["n_skipped"]:
        parts.append(f"{result['n_skipped']} already done (skipped)")
    if result["n_errors"]:
        parts.append(f"[yellow]{result['n_errors']} could not be read[/] (listed in predictions.jsonl; first: "
                     f"{escape(result['errors'][-result['n_errors']]['path'])})")
    console.print("; ".join(parts))
    if result["no_face"]:
        console.print(f"[yellow]no head found in {len(result['no_face'])} input(s)[/] (first: "
                      f"{escape(result['no_face'][0])}); give boxes with --head x,y,w,h or --heads-csv")
    extra = result["n_overlays"] - 3
    print_outputs(f"outputs in {result['out']}" + (f" ({extra} more overlays there)" if extra > 0 else ""),
                  result["files"])
