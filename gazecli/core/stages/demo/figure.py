"""The demo's figure (results.png): a few test persons with the raw Grad-CAM, the refined
pseudo-label and every student's heatmap."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from gazecli.core.io import write_bytes
from gazecli.core.stages.demo.plan import Job, gradcam_values


def quiet_transformers() -> None:
    """No "Loading weights" bars from transformers inside the demo's own progress display."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def write_figure(settings, plan: dict, out: Path, root: Path, done: dict[str, Job]) -> Path:
    """results.png: for a few test persons, the image with its head box and true gaze point, the
    raw Grad-CAM, the diffusion-refined pseudo-label, and every student's predicted heatmap."""
    import cv2
    import torch

    from gazecli.core.data.dataset import GazeDataset
    from gazecli.core.data.gazefollow import read_gazefollow
    from gazecli.core.data.heatmaps import minmax
    from gazecli.core.gradcam.store import GradcamStore
    from gazecli.core.models.registry import load_trained
    from gazecli.core.settings import GradcamSettings
    from gazecli.core.stages.gradcam import run_gradcam
    from gazecli.core.teachers import TeacherConfig, load_teacher

    n = plan["figure_persons"]
    table = read_gazefollow(root, "test")
    inside = np.flatnonzero(table.inout == 1)
    rng = np.random.default_rng(settings.seed)
    pick = np.sort(rng.choice(inside, size=min(n, len(inside)), replace=False))
    sub = table.subset(pick)
    store = out / "figure-gradcam"
    quiet_transformers()
    run_gradcam(GradcamSettings.model_validate({**gradcam_values(settings), "data": str(root), "split": "test",
                                                "out": str(store), "device": "cpu", "limit": int(pick.max()) + 1}))
    maps = {"gradcam": GradcamStore(store).for_table(sub, None)}
    student_jobs = [j for j in done.values() if j.kind == "student"]
    sample = load_trained(Path(student_jobs[0].result["run_dir"]), "cpu").sample
    ds = GazeDataset(sub, sample, maps=maps, seed=settings.seed)
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    report = done["pseudo-report"].result
    teacher = load_teacher(TeacherConfig(kind="diffusion", checkpoint=Path(done["diffusion"].result["run_dir"]),
                                         sample=asdict(sample), denoise_steps=report["denoise_steps"],
                                         ddim_steps=report["ddim_steps"]), "cpu")
    with torch.no_grad():
        refined, _ = teacher(batch, torch.Generator().manual_seed(settings.seed))
    columns = [("Grad-CAM (raw)", batch["gradcam"][:, 0].numpy()), ("refined", refined[:, 0].numpy())]
    for job in student_jobs:
        forward = load_trained(Path(job.result["run_dir"]), "cpu").forward
        with torch.no_grad():
            heat = forward(batch)["heatmap"][:, 0].float().numpy()
        columns.append((f"{job.extra['row']}", heat))
    cell, pad, top = 128, 4, 18
    width = (1 + len(columns)) * (cell + pad) + pad
    height = top + len(pick) * (cell + pad) + pad
    canvas = np.full((height, width, 3), 255, np.uint8)
    titles = ["image, head, truth"] + [c[0] for c in columns]
    for j, title in enumerate(titles):
        cv2.putText(canvas, title[:18], (pad + j * (cell + pad), 13), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1,
                    cv2.LINE_AA)
    for i, row in enumerate(pick):
        y = top + i * (cell + pad)
        image = cv2.imread(str(root / table.path[row]))
        h, w = image.shape[:2]
        base = cv2.resize(image, (cell, cell), interpolation=cv2.INTER_AREA)
        sx, sy = cell / w, cell / h
        x1, y1, x2, y2 = table.head_box_xyxy_px[row]
        cv2.rectangle(base, (int(x1 * sx), int(y1 * sy)), (int(x2 * sx), int(y2 * sy)), (255, 255, 255), 1)
        pts = table.gaze_xy_norm[row]
        mean = np.nanmean(pts, axis=0)
        centre = (int((x1 + x2) / 2 * sx), int((y1 + y2) / 2 * sy))
        target = (int(mean[0] * cell), int(mean[1] * cell))
        panel = base.copy()
        cv2.arrowedLine(panel, centre, target, (0, 255, 0), 1, cv2.LINE_AA, tipLength=0.08)
        canvas[y:y + cell, pad:pad + cell] = panel
        for j, (_, maps_) in enumerate(columns, start=1):
            heat = maps_[i]
            heat = minmax(heat)
            colour = cv2.applyColorMap(cv2.resize((heat * 255).astype(np.uint8), (cell, cell)), cv2.COLORMAP_JET)
            blend = cv2.addWeighted(base, 0.45, colour, 0.55, 0)
            cv2.circle(blend, target, 3, (255, 255, 255), 1, cv2.LINE_AA)
            x = pad + j * (cell + pad)
            canvas[y:y + cell, x:x + cell] = blend
    return write_bytes(out / "results.png", cv2.imencode(".png", canvas)[1].tobytes())
