"""gaze label"""

from __future__ import annotations

import typer

from gazecli.commands._options import settings_command
from gazecli.core.settings import LabelSettings

app = typer.Typer(name="label", add_completion=False)


@settings_command(app, "label", LabelSettings)
def label(s: LabelSettings) -> None:
    """Label your own images in the browser (head box, then where that person looks); --export writes the dataset."""
    from gazecli.commands._report import console, key_value_table, progress_bar

    if s.export:
        from gazecli.core.stages.label import run_export

        summary = run_export(s)
        console.print(key_value_table("exported", [
            ("images (train / test)", f"{summary['images']} ({summary['train_images']} / {summary['test_images']})"),
            ("persons (train / test)", f"{summary['train_persons']} / {summary['test_persons']} "
                                       f"({summary['outside_persons']} looking outside)"),
            ("left out", f"{summary['skipped_images']} skipped, {summary['unfinished_images']} not finished"),
            ("test split", f"{summary['test_fraction']:g} of the images, seed {summary['seed']}"),
        ]))
        console.print(f"dataset in [bold]{summary['dataset']}[/] (check it: gaze data check {summary['dataset']})")
        return

    from gazecli.core.stages.label import open_session, run_label

    def ready(url: str, session) -> None:
        p = session.progress()
        console.print(f"labelling {p['images']} images ({p['done']} done, {p['skipped']} skipped) into "
                      f"[bold]{session.root}[/]")
        console.print(f"open [bold]{url}[/] (listening on 127.0.0.1 port {url.rsplit(':', 1)[1].strip('/')}; "
                      f"Ctrl-C stops; every click is saved)", soft_wrap=True)

    with progress_bar("scoring uncertainty", "images") as update:  # --order uncertain: every image, once
        opened = open_session(s, update)
    run_label(s, ready, opened)
