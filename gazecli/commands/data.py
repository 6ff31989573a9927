"""gaze data: synth | check | import | split | baseline | train-vqa"""

from __future__ import annotations

import typer

from gazecli.commands._options import settings_command
from gazecli.core.settings import (BaselineSettings, CheckSettings, ImportSettings, SplitSettings, SynthSettings,
                                   TrainVQASettings)

app = typer.Typer(name="data", help="Datasets: synthesize GazeWorld, check a dataset, import your own labels, make label "
                                    "splits, baselines, train the GazeWorld VQA.",
                  no_args_is_help=True, add_completion=False)


@settings_command(app, "synth", SynthSettings)
def synth(s: SynthSettings) -> None:
    """Write GazeWorld, a procedural world in the exact (extended) GazeFollow on-disk format."""
    from gazecli.commands._report import console, key_value_table, progress_bar
    from gazecli.core.data.gazeworld import synthesize_gazeworld

    with progress_bar("GazeWorld", "images") as update:
        summary = synthesize_gazeworld(s.out, s.train, s.test, seed=s.seed, size=s.size, difficulty=s.difficulty,
                                       image_format=s.image_format, test_annotators=s.test_annotators,
                                       progress=update, force=s.force)
    console.print(key_value_table("GazeWorld", [
        ("train images / persons", f"{summary['n_train_images']} / {summary['n_train_persons']} "
                                   f"({summary['n_train_out_of_frame']} out of frame)"),
        ("test images / persons", f"{summary['n_test_images']} / {summary['n_test_persons']} "
                                  f"({summary['n_test_rows']} annotator rows)"),
        ("difficulty, size, seed", f"{summary['difficulty']}, {s.size} px, {s.seed}"),
        ("speed", f"{summary['images_per_s']:.0f} images/s ({summary['seconds']:.1f} s)"),
    ]))
    console.print(f"wrote {summary['files_written']} files to [bold]{s.out}[/]")
    if summary.get("qa_files"):
        console.print(f"and {summary['n_qa_pairs']} question-answer pairs to "
                      + ", ".join(f"[bold]{p}[/]" for p in summary["qa_files"]))


@settings_command(app, "check", CheckSettings)
def check(s: CheckSettings) -> None:
    """Validate a GazeFollow or VideoAttentionTarget dataset: every row, and every image."""
    from rich.table import Table

    from gazecli.commands._report import console, progress_bar
    from gazecli.core.data.check import check_dataset

    import os

    from gazecli.core.data.images import MAX_PIXELS_ENV
    from gazecli.core.validate import FOLLOW_SYMLINKS_ENV

    if s.max_image_pixels is not None:
        os.environ[MAX_PIXELS_ENV] = str(s.max_image_pixels)
    if s.follow_symlinks:
        os.environ[FOLLOW_SYMLINKS_ENV] = "1"
    with progress_bar("images", "images") as update:
        summary = check_dataset(s.root, s.dataset, decode=s.decode, skip_invalid=s.skip_invalid, progress=update,
                                follow_symlinks=s.follow_symlinks)
    table = Table(title=f"{summary['dataset']}: {summary['root']}", title_justify="left")
    splits = summary["splits"]
    table.add_column("")
    for name in splits:
        table.add_column(name, justify="right")
    keys = [k for k in ("file", "images", "persons", "in_frame", "out_of_frame", "with_body_box", "tracks",
                        "dropped_inout_-1", "skipped_rows") if any(k in v for v in splits.values())]
    for k in keys:
        table.add_row(k.replace("_", " "), *(str(v.get(k, "-")) for v in splits.values()))
    if "annotators_per_person" in splits.get("test", {}):
        a = splits["test"]["annotators_per_person"]
        table.add_row("annotators / test person", *(["-"] if "train" in splits else []),
                      f"{a['min']} / {a['mean']:.1f} / {a['max']} (min/mean/max)")
    console.print(table)
    img = summary["images"]
    size = ""
    if "width" in img:
        w, h = img["width"], img["height"]
        size = f", width {w['min']}-{w['max']} (median {w['median']:.0f}), height {h['min']}-{h['max']} (median {h['median']:.0f})"
    refused = f" ({img['bad']} missing, undecodable or refused: their rows skipped)" if img.get("bad") else ""
    console.print(f"images: {img['count']} {'decoded' if img['decoded'] else 'found'}{size}{refused}")
    for ls in summary.get("label_splits", []):
        console.print(f"label split {ls['folder']} ratio {ls['ratio']}: labelled {ls['labelled_persons']} "
                      f"(images {ls['labelled_images']}), val {ls['val_persons']}, unlabelled {ls['unlabelled_persons']}"
                      + (f", {ls['in_no_file']} rows in no split file (counted as labelled)" if ls["in_no_file"] else ""))
    if summary["skipped_rows"]:
        reasons = ", ".join(f"{reason} {n}" for reason, n in summary["skipped_by_reason"].items())
        console.print(f"[yellow]skipped {len(summary['skipped_rows'])} invalid rows[/]: {reasons} "
                      f"(first: {summary['skipped_rows'][0]})", soft_wrap=True)
    for split, dup in summary["duplicates"].items():
        console.print(f"[yellow]warning:[/] {dup['rows']} {split} {'rows repeat' if dup['rows'] > 1 else 'row repeats'} "
                      f"an earlier row's person "
                      f"(image and eye) (first: {dup['first']})", soft_wrap=True)
    console.print("[green]ok[/]")


@settings_command(app, "import", ImportSettings)
def import_(s: ImportSettings) -> None:
    """Turn your own labels (image, head box, gaze point or "outside") into a GazeFollow-layout dataset."""
    from gazecli.commands._report import console, key_value_table, print_outputs
    from gazecli.core.data.check import check_dataset
    from gazecli.core.data.importer import import_labels

    summary = import_labels(s.file, s.images, s.out, s.test_fraction, s.seed, s.force)
    check_dataset(s.out)  # read back with the readers every command uses
    console.print(key_value_table(f"imported into {summary['root']}", [
        ("persons / images", f"{summary['persons']} / {summary['images']} ({summary['out_of_frame']} looking out of frame)"),
        ("train images / persons", f"{summary['train_images']} / {summary['train_persons']}"),
        ("test images / persons", f"{summary['test_images']} / {summary['test_persons']} (seed {summary['seed']})"),
    ]))
    print_outputs("checked with gaze data check; next: gaze train-student --data "
                  f"{summary['root']} --ratio 1.0", summary["files"])


@settings_command(app, "split", SplitSettings)
def split(s: SplitSettings) -> None:
    """Make a seeded image-level label split (labelled / validation / unlabelled) in the authors' file format."""
    from gazecli.commands._report import console, key_value_table
    from gazecli.core.data.gazefollow import read_gazefollow
    from gazecli.core.data.splits import default_split_folder, make_split, write_split

    table = read_gazefollow(s.root, "train", skip_invalid=s.skip_invalid)
    result = make_split(table, s.ratio, s.seed, s.val_fraction)
    folder = s.out if s.out is not None else default_split_folder(s.root, s.seed)
    written = write_split(table, result, folder, force=s.force, extra={"val_fraction": s.val_fraction})
    c = result.counts(table)
    console.print(key_value_table(f"split ratio {s.ratio}, seed {s.seed} (image-level)", [
        ("labelled (train)", f"{c['labelled_persons']} persons, {c['labelled_images']} images"),
        ("validation", f"{c['val_persons']} persons, {c['val_images']} images"),
        ("unlabelled", f"{c['unlabelled_persons']} persons, {c['unlabelled_images']} images"),
        ("labelled fraction", f"{(c['labelled_persons'] + c['val_persons']) / len(table):.4f} of {len(table)} persons"),
    ]))
    for p in written:
        console.print(f"wrote [bold]{p}[/]")


@settings_command(app, "baseline", BaselineSettings)
def baseline(s: BaselineSettings) -> None:
    """Write a model-free baseline prediction file (centre Gaussian or training prior)."""
    from gazecli.commands._report import console
    from gazecli.core.stages.baseline import make_baseline

    out = make_baseline(s)
    console.print(f"wrote {out['kind']} baseline for {out['persons']} {out['split']} persons to [bold]{out['out']}[/]")


@settings_command(app, "train-vqa", TrainVQASettings, resumable=True)
def train_vqa(s: TrainVQASettings) -> None:
    """Train a GazeWorld VQA model (--arch blip: BLIP; cnn: convolutional) from scratch on GazeWorld's question-answer text;
    export it as a folder that gaze gradcam --vqa-model reads."""
    from gazecli.commands._report import RichReporter, console, metrics_table, print_outputs
    from gazecli.core.stages.train_vqa import train_vqa as run

    out = run(s, RichReporter("train-vqa"))
    rows = [{"split": name, **metrics} for name, metrics in (("val (best)", out["val_metrics"]),
                                                             ("test", out["test_metrics"])) if metrics]
    if rows:
        console.print(metrics_table(f"answer accuracy, best weights ({out['parameters']:,} parameters)", rows,
                                    ["split", "gaze_acc", "grounding_acc"]))
        for row in rows:
            console.print(f"{row['split']}: {row.get('by_type', '')}")
    print_outputs(f"run folder {out['result'].run_dir}; model folder (gaze gradcam --vqa-model) {out['model_dir']}",
                  out["files"])
