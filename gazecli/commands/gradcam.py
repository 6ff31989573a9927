"""gaze gradcam"""

from __future__ import annotations

import typer

from gazecli.commands._options import settings_command
from gazecli.core.settings import GradcamSettings

app = typer.Typer(name="gradcam", add_completion=False)


@settings_command(app, "gradcam", GradcamSettings)
def gradcam(s: GradcamSettings) -> None:
    """VQA Grad-CAM pseudo-annotations for every person of a split: batched, resumable, sharded
    (--shard i/n, or torchrun), with --merge and --import-pickle for the authors' files."""
    from gazecli.commands._report import console, key_value_table, progress_bar
    from gazecli.core.stages.gradcam import run_gradcam

    with progress_bar("Grad-CAM", "persons") as update:
        result = run_gradcam(s, progress=update)

    if result["mode"] == "merge":
        for split, n in result["splits"].items():
            console.print(f"merged {n} {split} persons into [bold]{result['out']}/{split}[/]")
        if not result["splits"]:
            console.print(f"[yellow]nothing to merge in {result['out']}[/]")
        return
    if result["mode"] == "import":
        console.print(key_value_table(f"imported {s.import_pickle}", [
            ("pickle entries", str(result["entries"])),
            ("matched persons", f"{result['matched_persons']} of {result['table_persons']} {result['split']} persons"),
            ("entries matching no person", str(result["unmatched_entries"])),
            ("layers, grid", f"{', '.join(map(str, result['layers']))}; {result['grid'][0]}x{result['grid'][1]}"),
        ]))
        console.print(f"wrote {result['merged']} {result['split']} persons to [bold]{result['index']}[/]")
        return
    if not result["is_main"]:
        return
    rows = [
        ("model", f"{result['model']} ({result['backend']})"),
        ("layers, grid", f"{', '.join(map(str, result['layers']))}; {result['grid'][0]}x{result['grid'][1]}"),
        ("persons", f"{result['persons']} ({result['already_stored']} already stored, {result['computed']} computed)"),
        ("speed", f"{result['persons_per_s']:.1f} persons/s ({result['seconds']:.1f} s in all)"),
        ("key noun", result["key_noun"]),
    ]
    if result["world_size"] > 1:
        rows.append(("ranks", f"{result['world_size']} (torchrun), counts are rank 0's share"))
    console.print(key_value_table(f"Grad-CAM {result['split']}", rows))
    if result["visualizations"]:
        n = result["visualized"]
        console.print(f"wrote {n} visualization{'s' * (n != 1)} to [bold]{result['visualizations']}[/]")
    if result["merged"] is not None:
        console.print(f"wrote {result['merged']} {result['split']} persons to [bold]{result['index']}[/]")
    else:
        console.print(f"wrote shard {result['shard']} chunks to [bold]{result['out']}[/]; when every shard is "
                      f"done: gaze gradcam --merge --out {result['out']}")
