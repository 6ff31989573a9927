"""`gaze predict`: heatmaps and gaze points for your own images, folders (mirrored, resumable,
one flushed JSON line set per input) and videos (tracked heads), with given or detected heads,
through `gazecli.Predictor` (core/predict/predictor.py); conventions in docs/predict.md."""

from __future__ import annotations

from pathlib import Path

from gazecli.core.data.images import read_image_rgb
from gazecli.core.errors import DataError, GazeError, SettingsError
from gazecli.core.predict.predictor import Predictor


def run_predict(settings, progress=None, warn=None) -> dict:
    """The `gaze predict` command. `warn(text)` receives the domain warning (once)."""
    from gazecli.core.engine.runs import new_run_dir
    from gazecli.core.predict.boxes import read_heads_csv
    from gazecli.core.predict.images import source_items

    kind, files = source_items(settings.source, settings.recursive)
    csv_heads = read_heads_csv(settings.heads_csv) if settings.heads_csv is not None else {}
    predictor = Predictor(settings.checkpoint, settings.device, settings.precision, detector=settings.detector)
    if warn is not None:
        predictor.on_warning = warn
    if settings.resume is not None:
        out = Path(settings.resume)
        if not (out / "predictions.jsonl").is_file():
            raise SettingsError(f"--resume {out}: not a gaze predict output folder (no predictions.jsonl)")
    else:
        out = new_run_dir(settings.project, "predict", settings.name)
    try:
        if kind == "video":
            from gazecli.core.predict.video import predict_video

            result = predict_video(predictor, files[0], out, settings, csv_heads, progress)
        else:
            result = _predict_images(predictor, files, out, settings, csv_heads, progress)
    except GazeError:
        jsonl = out / "predictions.jsonl"
        if settings.resume is None and (not jsonl.is_file() or jsonl.stat().st_size == 0):
            _discard(out)  # failed before any result: no folder that looks like one
        raise
    result.update(out=out, kind=kind, warning=predictor.warning,
                  detected=not settings.head and not csv_heads, detector=predictor.detector_name)
    if result["detected"]:
        result["detector"] = predictor.detector.description
    return result


def _predict_images(predictor: Predictor, files: list[Path], out: Path, settings, csv_heads: dict,
                    progress=None) -> dict:
    import cv2

    from gazecli.core.predict.boxes import csv_boxes_xyxy_px, heads_for, option_boxes_xyxy_px
    from gazecli.core.predict.images import overlay_path
    from gazecli.core.predict.outputs import HeatmapShards, PredictionLog, draw_overlay

    source = Path(settings.source)
    folder = source if source.is_dir() else source.parent
    relatives = [f.as_posix() if source.is_dir() else f.name for f in files]
    shards = HeatmapShards(out) if settings.save_heatmaps else None
    n_errors = n_skipped = n_read = 0
    no_face: list[str] = []
    overlays: list[Path] = []
    with PredictionLog(out / "predictions.jsonl", resume=settings.resume is not None) as log:
        for k, relative in enumerate(relatives):
            if relative in log.done:
                n_skipped += 1
                if progress:
                    progress(k + 1, len(relatives))
                continue
            file = folder / relative
            try:
                rgb = read_image_rgb(file)
                height, width = rgb.shape[:2]
                rows = heads_for(csv_heads, relative) if csv_heads else None
                eyes = None
                if settings.head:
                    boxes = option_boxes_xyxy_px(list(settings.head), width, height)  # bad: a SettingsError
                elif rows is not None:
                    boxes = csv_boxes_xyxy_px(rows, width, height)
                    eyes = [r[1] for r in rows]
                else:
                    boxes = None
            except DataError as e:  # undecodable image, or a CSV box that misses it: recorded, the folder goes on
                if len(relatives) == 1:
                    raise  # one input and it failed: its own error
                n_errors += 1
                log.write([{"path": relative, "error": str(e)}])
                if progress:
                    progress(k + 1, len(relatives))
                continue
            n_read += 1
            if boxes is None:
                boxes, head_source = predictor.detector(rgb), "detected"
            else:
                head_source = "given"
            people = predictor.predict_boxes(rgb, boxes, head_source, relative, eyes)
            target = overlay_path(out, Path(relative))
            target.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(target), draw_overlay(rgb, people)):
                target = target.with_suffix(".png")  # a format OpenCV cannot write: PNG instead
                cv2.imwrite(str(target), draw_overlay(rgb, people))
            overlays.append(target)
            if shards is not None and people:
                shards.write(relative, [relative] * len(people), [p.eye_xy_norm for p in people],
                             [p.heatmap for p in people],
                             None if people[0].inout is None else [p.inout for p in people])
            if not people:
                no_face.append(relative)
                log.write([{"path": relative, "image": str(file), "persons": 0}])
            else:
                log.write([{"path": relative, "image": str(file), "person": i, **p.to_json()}
                           for i, p in enumerate(people)])
            if progress:
                progress(k + 1, len(relatives))
        records = list(log.records)
    if n_read == 0 and n_skipped == 0:
        first = next((r for r in records if "error" in r), None)
        if settings.resume is None:
            _discard(out)  # nothing but error lines
        raise DataError(f"none of the {len(relatives)} input image(s) could be read"
                        + (f" (first: {first['error']})" if first else ""))
    written: list[Path] = [out / "predictions.jsonl"]
    if shards is not None:
        npz = shards.join([r for r in relatives], out / "predictions.npz")
        if npz is not None:
            written.append(npz)
    return {"records": [r for r in records if "person" in r], "errors": [r for r in records if "error" in r],
            "n_inputs": len(relatives), "n_errors": n_errors, "n_skipped": n_skipped,
            "no_face": no_face, "files": overlays[:3] + written, "n_overlays": len(overlays)}


def _discard(out: Path) -> None:
    """Remove an output folder this run created when nothing could be predicted into it."""
    (out / "predictions.jsonl").unlink(missing_ok=True)
    try:
        out.rmdir()
    except OSError:
        pass  # something else is in it: leave it
