"""`gaze train-student`: the VAT / VAT-GC student, or the small GazeWorld student (`gw-student`,
docs/gazeworld.md), on the shared engine.

Supervised mode (`--teacher none`) trains on the labelled part of the split only: the paper's
"VAT" baselines (docs/design.md, "Student"); `--ratio 1.0` uses every label.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gazecli.core.data.dataset import GazeDataset
from gazecli.core.data.kind import describe_dataset
from gazecli.core.data.transforms import SampleConfig
from gazecli.core.engine.device import resolve_device
from gazecli.core.engine.sampling import EpochBatches
from gazecli.core.engine.precision import resolve_precision
from gazecli.core.engine.trainer import Reporter, StepContext, TrainResult, TrainSpec, train
from gazecli.core.constants import PRIOR_ALONE
from gazecli.core.errors import SettingsError
from gazecli.core.losses import heatmap_errors
from gazecli.core.metrics import score_predictions
from gazecli.core.models.vat import student_forward
from gazecli.core.settings import TrainStudentSettings, to_toml
from gazecli.core.stages.common import (heatmap_evaluator, resolve_split, run_meta, sample_config, select_mode,
    split_summary)
from gazecli.core.teachers import NEEDS_GRADCAM, TeacherConfig, load_teacher


def training_sample_config(settings: TrainStudentSettings, augment: bool) -> SampleConfig:
    """The training views: under --compat the official Grad-CAM crop and out-of-frame zeroing
    (docs/compat.md); evaluation views never read the in/out flag."""
    return replace(sample_config(settings, augment), gradcam_compat=settings.compat)


def student_model_config(settings: TrainStudentSettings) -> dict:
    if settings.model == "gw-student":
        from gazecli.core.models.gazeworld_student import student_config

        return student_config(settings)
    return {"backbone": settings.backbone, "input_size": settings.input_size, "face_size": settings.face_size,
            "heatmap_size": settings.heatmap_size, "inout": settings.inout_weight > 0, "coords": bool(settings.coords)}


def gradcam_maps(settings: TrainStudentSettings, table):
    """The Grad-CAM MapSource of `table` from --gradcam (a `gaze gradcam` store)."""
    if settings.gradcam is None:
        return None
    from gazecli.core.gradcam.store import GradcamStore

    store = GradcamStore(settings.gradcam)
    if not store.exists():
        raise SettingsError(f"--gradcam {settings.gradcam}: not a Grad-CAM store (make one with gaze gradcam)")
    return store.for_table(table, settings.gradcam_layer)


def pseudo_inout_rule(settings: TrainStudentSettings) -> str:
    """all | predicted | ground-truth (the last reads hidden labels: --compat only)."""
    rule = settings.pseudo_inout
    if settings.compat and rule == "auto":
        return "ground-truth"
    if rule == "auto":
        return "predicted" if settings.inout_weight > 0 else "all"
    if rule == "predicted" and settings.inout_weight <= 0:
        raise SettingsError("--pseudo-inout predicted needs the student's in/out head (--inout-weight > 0)")
    return rule


def needs_gradcam(settings: TrainStudentSettings) -> bool:
    return settings.model == "vat-gc" or settings.teacher in NEEDS_GRADCAM


def teacher_config(settings: TrainStudentSettings) -> TeacherConfig:
    return TeacherConfig(kind=settings.teacher, checkpoint=settings.teacher_checkpoint,
                         sample=asdict(sample_config(settings, False)), denoise_steps=settings.denoise_steps,
                         ddim_steps=settings.ddim_steps, eta=settings.eta, samples=settings.teacher_samples,
                         compat=True if settings.compat else None,
                         network=None if settings.teacher_network == "auto" else settings.teacher_network)


def build_teacher(settings: TrainStudentSettings, device):
    return load_teacher(teacher_config(settings), device)


def cache_recipe(settings: TrainStudentSettings) -> dict:
    return {"teacher": settings.teacher, "checkpoint": str(settings.teacher_checkpoint), "network": settings.teacher_network,
            "gradcam": str(settings.gradcam), "layer": settings.gradcam_layer, "denoise_steps": settings.denoise_steps,
            "ddim_steps": settings.ddim_steps, "eta": settings.eta, "samples": settings.teacher_samples,
            "compat": settings.compat, "cache_samples": settings.cache_samples, "seed": settings.seed,
            "sample": asdict(sample_config(settings, False)), "ratio": settings.ratio, "split_seed": settings.split_seed}


def train_student(settings: TrainStudentSettings, reporter: Reporter | None = None) -> TrainResult:
    device = resolve_device(settings.device)
    precision = resolve_precision(settings.precision, device)
    semi = settings.teacher != "none"
    if needs_gradcam(settings) and settings.gradcam is None:
        what = f"--teacher {settings.teacher}" if settings.teacher != "none" else "--model vat-gc"
        raise SettingsError(f"{what} needs Grad-CAM maps: --gradcam STORE (make them with gaze gradcam)")
    if semi and settings.teacher not in ("gradcam",) and settings.teacher_checkpoint is None:
        raise SettingsError(f"--teacher {settings.teacher} needs --teacher-checkpoint")
    train_table, split, split_note = resolve_split(settings)
    if semi and not split.unlabelled.any():
        raise SettingsError(f"--teacher {settings.teacher}: the split has no unlabelled persons (--ratio < 1)")
    if reporter:
        reporter.message(split_summary(split, split_note))

    from gazecli.core.engine.distributed import env_info
    from gazecli.core.engine.seed import seed_everything
    from gazecli.core.models import build_model
    from gazecli.core.models.init import initialise

    seed_everything(settings.seed)  # before the model exists: its initial weights follow the seed
    config = student_model_config(settings)
    model = build_model(settings.model, config)
    report = initialise(model, settings.init, settings.backbone) if settings.resume is None else None
    if report is not None and reporter:
        reporter.message(report.summary())

    rule = pseudo_inout_rule(settings) if semi else "all"
    maps = {}
    if needs_gradcam(settings):
        maps["gradcam"] = gradcam_maps(settings, train_table)
    teacher = None
    if semi:
        teacher = build_teacher(settings, device)
        if settings.pseudo_cache is not None and settings.teacher != "gradcam":
            maps["pseudo"] = cached_pseudo_labels(settings, train_table, split, maps, teacher, device, reporter)
            from gazecli.core.teachers.cache import CachedTeacher

            teacher = CachedTeacher()
    dataset = GazeDataset(train_table, training_sample_config(settings, settings.augment), labelled=split.labelled,
                          maps=maps, seed=settings.seed, expose_unlabelled_labels=rule == "ground-truth")
    info = env_info()
    for name, value in (("--batch-size", settings.batch_size), ("--labeled-batch-size", settings.labeled_batch_size)):
        if semi and value is not None and value % info.world_size:
            raise SettingsError(f"{name} {value} must be divisible by the {info.world_size} processes")
    if settings.batch_size % info.world_size:
        raise SettingsError(f"--batch-size {settings.batch_size} must be divisible by the {info.world_size} processes")
    if semi:
        from gazecli.core.engine.sampling import TwoStreamBatches

        if not settings.labeled_batch_size < settings.batch_size:
            raise SettingsError("--labeled-batch-size must be smaller than --batch-size")
        batches = TwoStreamBatches(np.flatnonzero(split.unlabelled), np.flatnonzero(split.labelled),
                                   settings.batch_size // info.world_size,
                                   settings.labeled_batch_size // info.world_size, seed=settings.seed,
                                   rank=info.rank, world_size=info.world_size)
    else:
        batches = EpochBatches(np.flatnonzero(split.labelled), settings.batch_size // info.world_size,
                               seed=settings.seed, rank=info.rank, world_size=info.world_size)
    from gazecli.core.engine.schedules import make_optimizer

    optimizer, scheduler, callbacks = make_optimizer(settings, model, settings.epochs * len(batches))
    loss_fn = student_loss(settings, teacher, rule)

    spec = TrainSpec(
        command="train-student", settings=settings, settings_toml=to_toml(settings), model=model,
        model_meta={"name": settings.model, "config": config}, optimizer=optimizer, scheduler=scheduler,
        dataset=dataset, batches=batches, loss_fn=loss_fn, epochs=settings.epochs,
        evaluate_fn=heatmap_evaluator(settings, student_forward, train_table, split, device, precision,
                              (lambda t: {"gradcam": gradcam_maps(settings, t)}) if settings.model == "vat-gc" else None),
        select_metric=settings.select_metric, select_mode=select_mode(settings.select_metric),
        select_on=settings.select_on, eval_every=settings.eval_every, checkpoint_every=settings.checkpoint_every,
        callbacks=callbacks,
        extra_meta={**run_meta(settings, split_note), "trained_on": describe_dataset(Path(settings.data)),
                    "gradcam": str(settings.gradcam) if settings.gradcam else None,
                    "teacher": {"kind": settings.teacher, "pseudo_inout": rule,
                                "cached": settings.pseudo_cache is not None}},
    )
    return train(spec, device, precision, settings.seed, settings.project, settings.name, settings.resume,
                 settings.workers, reporter)


def student_loss(settings: TrainStudentSettings, teacher, rule: str):
    """MSE x loss_scale over the labelled persons (ground truth) and the unlabelled persons with a
    usable pseudo-label (teacher), selected by indexing; in/out BCE on labelled persons only."""
    semi = teacher is not None

    def loss_fn(net, batch, ctx: StepContext):
        out = student_forward(net, batch)
        labelled = batch["labelled"].bool()
        per_person, defined = heatmap_errors(out["heatmap"], batch["heatmap"], settings.loss)  # (B,)
        sup = labelled & (batch["inout"] == 1) if settings.heatmap_loss_on == "in-frame" else labelled
        sup = sup & defined
        terms, weights = [per_person[sup]], [torch.ones_like(per_person[sup])]
        logs: dict = {}
        if semi and (~labelled).any():
            unl = ~labelled
            sub = {k: (v[unl] if isinstance(v, torch.Tensor) and v.shape[:1] == labelled.shape else v)
                   for k, v in batch.items()}
            with torch.no_grad():
                target, usable = teacher(sub, ctx.generator)
            keep = usable.clone()
            if rule == "predicted":
                keep &= torch.sigmoid(out["inout"][unl].detach().float()) >= settings.inout_threshold
            elif rule == "ground-truth":  # --compat: the hidden label, exactly the official code's leak
                keep &= sub["inout"] == 1
            if target.shape[-1] != out["heatmap"].shape[-1]:
                target = F.interpolate(target, size=out["heatmap"].shape[-2:], mode="bilinear", align_corners=False)
            pseudo_err, ok = heatmap_errors(out["heatmap"][unl], target, settings.loss)
            keep &= ok
            terms.append(pseudo_err[keep])
            weights.append(torch.full_like(pseudo_err[keep], settings.pseudo_weight))
            logs["pseudo_kept"] = float(keep.float().mean())
            logs["pseudo_loss"] = float(pseudo_err[keep].mean().detach() * settings.loss_scale) if keep.any() else 0.0
        errors, w = torch.cat(terms), torch.cat(weights)
        loss = (errors * w).sum() / w.sum() * settings.loss_scale if w.sum() > 0 else out["heatmap"].sum() * 0.0
        logs["sup_loss"] = float(per_person[sup].mean().detach() * settings.loss_scale) if sup.any() else 0.0
        if settings.inout_weight > 0:
            known = labelled & (batch["inout"] >= 0)
            inout_loss = F.binary_cross_entropy_with_logits(out["inout"][known].float(), batch["inout"][known].float()) \
                if known.any() else out["inout"].sum() * 0.0
            loss = loss + settings.inout_weight * inout_loss
            logs["inout_loss"] = float(inout_loss.detach())
        return loss, logs

    return loss_fn


def cached_pseudo_labels(settings, train_table, split, maps, teacher, device, reporter):
    """Build (or reuse) the --pseudo-cache and return its MapSource for the training dataset."""
    from gazecli.core.teachers.cache import PseudoLabelCache

    cache = PseudoLabelCache(settings.pseudo_cache, cache_recipe(settings))
    if not cache.complete():
        views = GazeDataset(train_table, training_sample_config(settings, False), labelled=split.labelled, maps=maps,
                            seed=settings.seed)
        rows = np.flatnonzero(split.unlabelled)
        if reporter:
            reporter.message(f"caching {settings.cache_samples} pseudo-labels for each of {len(rows)} unlabelled "
                             f"persons in {cache.folder}")
        cache.build(teacher, views, rows, settings.cache_samples, settings.eval_batch_size, device, settings.seed)
    return cache.for_table(train_table, settings.seed)


def pseudo_label_report(settings: TrainStudentSettings, progress=None) -> dict:
    """How good are the pseudo-labels? Raw Grad-CAM and the teacher's refined targets of the
    unlabelled persons scored against their hidden ground truth (in-frame persons; GazeWorld, or a
    GazeFollow split used as unlabelled), with a centre prior for reference."""
    from gazecli.core.data.heatmaps import baseline_heatmap
    from gazecli.core.predictions import Predictions
    from gazecli.core.teachers.gradcam import GradcamTeacher

    device = resolve_device(settings.device)
    train_table, split, note = resolve_split(settings)
    rows = np.flatnonzero(split.unlabelled & (train_table.inout == 1))
    if len(rows) == 0:
        raise SettingsError("--pseudo-report: no unlabelled in-frame persons (--ratio < 1)")
    table = train_table.subset(rows)
    maps = {}
    if settings.gradcam is not None:
        maps["gradcam"] = gradcam_maps(settings, table)
    dataset = GazeDataset(table, sample_config(settings, False), maps=maps, seed=settings.seed)
    teachers = {}
    if settings.gradcam is not None:
        teachers["Grad-CAM (raw)"] = GradcamTeacher()
    if settings.teacher not in ("none", "gradcam"):
        teachers[f"{settings.teacher} teacher"] = build_teacher(settings, device)
    if settings.report_prior:
        if settings.teacher != "diffusion":
            raise SettingsError("--report-prior scores the diffusion teacher's prior without Grad-CAM: it needs "
                                f"--teacher diffusion (got {settings.teacher})")
        teachers[PRIOR_ALONE] = build_teacher(settings.model_copy(update={"teacher": "noise"}), device)
    if not teachers:
        raise SettingsError("--pseudo-report needs --gradcam STORE and/or a --teacher with its checkpoint")
    size = settings.heatmap_size
    results = []
    centre = baseline_heatmap("center", settings.data, size)
    centre_preds = Predictions(table.path.astype(str), table.eye_xy_norm, np.broadcast_to(centre, (len(table), size, size)))
    results.append({"name": "centre prior", **_scores(table, centre_preds, device), "usable": 1.0})
    for name, teacher in teachers.items():
        generator = torch.Generator(device=device).manual_seed(settings.seed)
        heat, usable = [], []
        loader = torch.utils.data.DataLoader(dataset, batch_size=settings.eval_batch_size, num_workers=settings.workers)
        for batch in loader:
            batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
            target, ok = teacher(batch, generator)
            heat.append(target[:, 0].float().cpu().numpy())
            usable.append(ok.cpu().numpy())
            if progress:
                progress(sum(len(h) for h in heat), len(dataset))
        heat, usable = np.concatenate(heat), np.concatenate(usable).astype(bool)
        preds = Predictions(table.path.astype(str), table.eye_xy_norm, heat)
        # persons without a usable target are scored too (their map is flat: AUC 0.5): an honest average
        results.append({"name": name, **_scores(table, preds, device), "usable": float(usable.mean())})
    if settings.report_student is not None:  # the student trained on the labels alone: what a pseudo-label must beat
        results.append(_student_row(settings, table, dataset, device))
    return {"split": note, "persons": int(len(table)), "ratio": settings.ratio, "results": results,
            "teacher": settings.teacher, "denoise_steps": settings.denoise_steps, "ddim_steps": settings.ddim_steps,
            "compat": settings.compat}


def _scores(table, preds, device) -> dict:
    result = score_predictions(table, preds, "native", str(device))
    return {k: result[k] for k in ("auc", "avg_l2", "min_l2", "n")}


def _student_row(settings: TrainStudentSettings, table, dataset, device) -> dict:
    """--report-student: that student's heatmaps of the report's persons, scored like the pseudo-labels
    (row "10 % student (none)": its label ratio and teacher)."""
    from gazecli.core.constants import STUDENT_MODELS
    from gazecli.core.engine.inference import predict_dataset
    from gazecli.core.models.build import load_model

    model, meta = load_model(settings.report_student, device)
    name = (meta.get("model") or {}).get("name")
    if name not in STUDENT_MODELS or name == "vat-gc":
        raise SettingsError(f"--report-student {settings.report_student}: not a student checkpoint without Grad-CAM "
                            f"input (a {name!r} model)")
    if (meta.get("sample") or {}).get("input_size", settings.input_size) != settings.input_size:
        raise SettingsError(f"--report-student {settings.report_student}: trained at another --input-size")
    preds = predict_dataset(lambda b: student_forward(model, b), dataset, settings.eval_batch_size, device, "fp32",
                            settings.workers)
    ratio = float((meta.get("split") or {}).get("ratio", settings.ratio))
    teacher = (meta.get("teacher") or {}).get("kind", "none")
    return {"name": f"{ratio * 100:g} % student ({teacher})", **_scores(table, preds, device), "usable": 1.0}
