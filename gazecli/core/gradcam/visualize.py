"""`--visualize N`: one PNG per person with the drawn prompt, the CAM overlaid, the question,
the answer and the key noun."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gazecli.core.data.heatmaps import minmax

MIN_SIDE_PX = 384  # small images (GazeWorld) are enlarged so the caption stays legible


def render_visualization(image_rgb: np.ndarray, cam: np.ndarray, lines: list[str], alpha: float = 0.45) -> np.ndarray:
    """(H', W', 3) uint8 BGR: the image (with its prompt drawn) under the min-max normalised
    CAM (bilinear to the image size, JET colours), above a caption of `lines`."""
    import cv2

    h, w = image_rgb.shape[:2]
    scale = max(1.0, MIN_SIDE_PX / min(h, w))
    if scale > 1.0:
        image_rgb = cv2.resize(image_rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_NEAREST)
        h, w = image_rgb.shape[:2]
    bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    cam = np.asarray(cam, dtype=np.float32)
    finite = np.isfinite(cam).all()
    norm = minmax(cam) if finite else np.zeros_like(cam)
    heat = cv2.resize(norm, (w, h), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.clip(heat * 255.0 + 0.5, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    blended = cv2.addWeighted(bgr, 1.0 - alpha, colour, alpha, 0.0)
    font, font_scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    line_h = 20
    wrapped = [part for text in lines for part in _wrap(text, w - 12, font, font_scale, thick)]
    caption = np.full((line_h * len(wrapped) + 8, w, 3), 255, dtype=np.uint8)
    for i, text in enumerate(wrapped):
        cv2.putText(caption, text, (6, 18 + i * line_h), font, font_scale, (0, 0, 0), thick, cv2.LINE_AA)
    return np.vstack([blended, caption])


def _wrap(text: str, width: int, font, scale: float, thick: int) -> list[str]:
    """Greedy word wrap to `width` pixels (a word longer than a line gets a line of its own)."""
    import cv2

    out, line = [], ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if line and cv2.getTextSize(candidate, font, scale, thick)[0][0] > width:
            out.append(line)
            line = "  " + word
        else:
            line = candidate
    out.append(line)
    return out


def write_visualization(path: Path, image_rgb: np.ndarray, cam: np.ndarray, lines: list[str]) -> Path:
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), render_visualization(image_rgb, cam, lines)):
        raise OSError(f"cannot write {path}")
    return path
