"""gaze demo"""

from __future__ import annotations

import time

import typer

from gazecli.commands._options import settings_command
from gazecli.core.settings import DemoSettings

app = typer.Typer(name="demo", add_completion=False)


def job_table(graph):
    from rich.table import Table

    table = Table(title="gaze demo", title_justify="left")
    for col in ("stage", "what", "state", "time"):
        table.add_column(col)
    for job in graph:
        state = job.state
        elapsed = job.seconds if job.result is not None else (time.perf_counter() - job.started if job.started else 0)
        p = job.extra.get("progress") if job.state == "running" else None
        if p and p.get("total"):
            epoch = f"epoch {p['epoch']}/{p['epochs']} " if p.get("epochs") else ""
            state = f"running: {epoch}{p['done']}/{p['total']}"
        colour = {"done": "green", "running": "yellow"}.get(state.split(":")[0].split(" ")[0], "dim")
        table.add_row(job.name, job.title, f"[{colour}]{state}[/]", f"{elapsed:.0f} s" if elapsed else "")
    return table


@settings_command(app, "demo", DemoSettings)
def demo(s: DemoSettings) -> None:
    """Run the whole method on GazeWorld: synthesize a world with --ratio of its labels, Grad-CAM of
    the unlabelled persons with the shipped GazeWorld VQA, the diffusion prior, students with teachers
    none / gradcam / diffusion (and none at 2x and 10x the labels), then the results table
    (results.md, results.json) and figure (results.png) in --out."""
    from rich.live import Live

    from gazecli.commands._report import console, err_console, metrics_table, print_outputs, progress_bar
    from gazecli.core.stages.demo import prepare_world, run_demo

    if not s.sweep:
        with progress_bar("GazeWorld", "images") as world_progress:
            prepare_world(s, world_progress)
    live = Live(console=err_console, refresh_per_second=2, transient=False) if err_console.is_terminal else None

    def show(graph):
        if live is not None:
            live.update(job_table(graph))

    if live is not None:
        live.start()
    try:
        results = run_demo(s, show=show)
    finally:
        if live is not None:
            live.stop()
    if s.sweep:  # the VQA-quality sweep (an ablation)
        from gazecli.core.stages.demo.sweep import sweep_markdown

        console.print(sweep_markdown(results))
        print_outputs(f"sweep in {s.out}", results["files"])
        return
    from gazecli.core.seed_summary import fmt

    seeds = ", ".join(map(str, results["seeds"]))
    first = {}
    for r in results["students"]:
        first.setdefault(r["student"], r)
    console.print(metrics_table(f"students on test, mean ± std over seeds {seeds}",
                                [{"student": k, "labels": f"{first[k]['ratio']:g}", "teacher": first[k]["teacher"],
                                  "steps": first[k]["steps"], **{m: fmt(v[m]) for m in ("auc", "avg_l2", "min_l2")}}
                                 for k, v in results["summary"].items()],
                                ["student", "labels", "teacher", "steps", "auc", "avg_l2", "min_l2"]))
    console.print(metrics_table(f"pseudo-labels of the unlabelled persons vs their hidden truth (seeds {seeds})",
                                [{"name": k, **{m: fmt(v[m]) for m in ("auc", "avg_l2", "min_l2")}}
                                 for k, v in results["pseudo_summary"].items()], ["name", "auc", "avg_l2", "min_l2"]))
    colour = {"yes": "green", "no": "red"}
    for claim, v in results["verdict"].items():
        console.print(f"[{colour.get(v['holds'], 'yellow')}]{v['holds']}[/] (per seed {v['seeds']} of {v['of']})  "
                      f"{claim}")
    cpu = results.get("cpu_seconds")
    console.print(f"wall time {results['seconds']:.0f} s" + (f", {cpu / 60:.1f} CPU minutes" if cpu else ""))
    print_outputs(f"results in {s.out}", results["files"])
