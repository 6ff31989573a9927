"""How much work labelling N GazeWorld persons in `gaze label` takes, with and without model suggestions.

Nobody labels by hand here: a scripted labeller drives the real page (Playwright + Debian's
chromium, headless) and gives GazeWorld's true answers. It measures what a script can measure:
the actions needed (drags, clicks, key presses) and the wall time of the session (page, server,
journal, model: the software's share of a person's time, not a human's thinking and pointing).
A human time is then *estimated* from the action counts with the Keystroke-Level Model
(Card, Moran & Newell 1980: point 1.1 s, press/release a button 0.1 s each, key 0.28 s, a mental
step 1.35 s before each decision) -- an estimate, stated as such.

Three conditions, the same images:
- none: drag each head box, click each gaze point (or `o`), `->` per image;
- gaze: `--checkpoint`: drag each head box; the model's gaze for it is accepted with `enter` when
  it lies within --tolerance of the truth, else the true point is clicked;
- heads+gaze: `--checkpoint --heads-csv` (the true head boxes stand in for a head detector: the
  Haar face detector finds no GazeWorld heads): `enter` accepts box and gaze, or a click gives the
  point for the suggested box.
The labels' error against the truth is reported too (accepting a suggestion costs accuracy).

    python benchmarks/label_speed.py --world /tmp/gw --checkpoint runs/train-student/run --persons 20 \
        --out /tmp/label-speed [--screenshot docs/label_page.png]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from gazecli.core.data.gazefollow import read_gazefollow
from gazecli.core.data.images import image_size_wh

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
KLM = {"drag": 1.35 + 1.1 + 0.1 + 1.1 + 0.1, "click": 1.35 + 1.1 + 0.2, "key": 1.35 + 0.28, "next": 0.28}


def start_server(images: Path, root: Path, *extra: str):
    process = subprocess.Popen([sys.executable, "-m", "gazecli", "label", str(images), "--out", str(root), "--port", "0",
                                *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    for line in process.stdout:
        found = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        if found:
            return process, found.group(1)
    raise RuntimeError("gaze label did not start")


def label_session(browser, url: str, truth: dict, mode: str, tolerance: float, screenshot: Path | None) -> dict:
    page = browser.new_page(viewport={"width": 1000, "height": 720})
    page.goto(url)
    idle = lambda: page.evaluate("window.gazeLabel.idle()")  # noqa: E731
    page.wait_for_function("window.gazeLabel && window.gazeLabel.ready")
    idle()
    counts = {"drag": 0, "click": 0, "key": 0, "next": 0, "accepted": 0, "corrected": 0}
    errors = []

    def screen(x, y):
        box = page.locator("#canvas").bounding_box()
        z = page.evaluate("gazeLabel.zoom")
        return box["x"] + x * z, box["y"] + y * z

    def click(x, y):
        page.mouse.click(*screen(x, y))
        counts["click"] += 1
        idle()

    def key(name, kind="key"):
        page.keyboard.press(name)
        counts[kind] += 1
        idle()
        page.wait_for_function("window.gazeLabel.ready")

    t0 = time.perf_counter()
    for key_name, persons in truth.items():
        assert page.evaluate("gazeLabel.key") == key_name, (page.evaluate("gazeLabel.key"), key_name)
        size = persons[0]["size"]
        for i, p in enumerate(persons):
            gaze = p["gaze_xy_px"]
            if mode == "heads+gaze":
                s = page.evaluate("window.gazeLabel.pendingFirst()")
            else:
                x1, y1, x2, y2 = p["head_box_xyxy_px"]
                page.mouse.move(*screen(x1, y1))
                page.mouse.down()
                page.mouse.move(*screen(x2, y2), steps=3)
                page.mouse.up()
                counts["drag"] += 1
                idle()
                s = page.evaluate("window.gazeLabel.waitingSuggestion")
            if screenshot is not None and i == 1 and mode != "none" and not screenshot.exists():
                page.screenshot(path=str(screenshot))  # one person labelled, the next one suggested
            suggested_in = s is not None and (s["inout"] is None or s["inout"] >= 0.5)
            good = s is not None and (
                (gaze is None and not suggested_in) or
                (gaze is not None and suggested_in and
                 np.hypot(*(np.subtract(s["gaze_xy_px"], gaze) / size)) <= tolerance))
            if mode != "none" and good:
                key("Enter")
                counts["accepted"] += 1
                given = None if gaze is None else s["gaze_xy_px"]
            else:
                if mode != "none":
                    counts["corrected"] += 1
                if gaze is None:
                    key("o")
                else:
                    click(*gaze)
                given = gaze
            if gaze is not None and given is not None:
                errors.append(float(np.hypot(*(np.subtract(given, gaze) / size))))
        key("ArrowRight", "next")
    seconds = time.perf_counter() - t0
    page.close()
    klm = sum(KLM[k] * counts[k] for k in KLM)
    return {"mode": mode, "seconds": round(seconds, 2), **counts,
            "actions": counts["drag"] + counts["click"] + counts["key"] + counts["next"],
            "klm_estimate_s": round(klm, 1), "label_error_mean": round(float(np.mean(errors)), 4),
            "label_error_max": round(float(np.max(errors)), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, required=True, help="a GazeWorld root (gaze data synth)")
    ap.add_argument("--checkpoint", type=Path, required=True, help="a train-student run on that world")
    ap.add_argument("--persons", type=int, default=20)
    ap.add_argument("--skip-images", type=int, default=0, help="start after this many training images")
    ap.add_argument("--tolerance", type=float, default=0.05, help="accept a suggested point this close to the truth "
                                                                   "(normalised; GazeWorld's objects are ~0.1 wide)")
    ap.add_argument("--out", type=Path, default=Path("label-speed"))
    ap.add_argument("--screenshot", type=Path, default=None)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    table = read_gazefollow(args.world, "train")
    truth: dict[str, list[dict]] = {}
    images = args.out / "images"
    shutil.rmtree(args.out, ignore_errors=True)
    images.mkdir(parents=True)
    rows = ["file,x,y,w,h"]
    keys = list(dict.fromkeys(table.path))[args.skip_images:]
    for key in keys:
        if sum(len(v) for v in truth.values()) >= args.persons:
            break
        name = Path(key).name
        shutil.copy(args.world / key, images / name)
        size = float(image_size_wh(images / name)[0])  # GazeWorld images are square
        for i in np.flatnonzero(table.path == key):
            box = table.head_box_xyxy_px[i]
            g = table.gaze_xy_norm[i, 0]
            truth.setdefault(name, []).append({"head_box_xyxy_px": box.tolist(), "size": size,
                                               "gaze_xy_px": None if table.inout[i] == 0 else (g * size).tolist()})
            rows.append(f"{name},{box[0]},{box[1]},{box[2] - box[0]},{box[3] - box[1]}")
    truth = dict(sorted(truth.items()))
    (args.out / "heads.csv").write_text("\n".join(rows) + "\n")
    n_persons = sum(len(v) for v in truth.values())
    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        for mode, extra in (("none", []), ("gaze", ["--checkpoint", str(args.checkpoint), "--device", "cpu"]),
                            ("heads+gaze", ["--checkpoint", str(args.checkpoint), "--device", "cpu", "--heads-csv",
                                            str(args.out / "heads.csv")])):
            process, url = start_server(images, args.out / f"labels-{mode}", *extra)
            try:
                shot = args.screenshot if mode == "heads+gaze" else None
                results.append(label_session(browser, url, truth, mode, args.tolerance, shot))
            finally:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)
            print(json.dumps(results[-1]), flush=True)
        browser.close()
    lines = [f"{n_persons} GazeWorld persons in {len(truth)} images, scripted labeller, tolerance {args.tolerance:g}", "",
             "| suggestions | actions (drag / click / key / next) | accepted / corrected | wall time of the script | "
             "KLM human estimate | label error mean / max |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['mode']} | {r['actions']} ({r['drag']} / {r['click']} / {r['key']} / {r['next']}) | "
                     f"{r['accepted']} / {r['corrected']} | {r['seconds']:.1f} s | {r['klm_estimate_s']:.0f} s | "
                     f"{r['label_error_mean']:.3f} / {r['label_error_max']:.3f} |")
    text = "\n".join(lines) + "\n"
    (args.out / "table.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(text)


if __name__ == "__main__":
    main()
