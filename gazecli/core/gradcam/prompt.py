"""How the person is indicated to the VQA model (docs/design.md, "Grad-CAM").

With a body box, it is drawn in green (2 px) on the full-resolution image and the question
names the box; without one, the plain image and a plain question. The image is then resized
to the model's square input without keeping the aspect ratio (as OFA's 480x480), so the
model's patch grid covers the whole original image: grid cell (r, c) is the image region
[c/gw, (c+1)/gw) x [r/gh, (r+1)/gh) in normalised coordinates, the convention the data layer's
`transform_map` uses for per-person maps.
"""

from __future__ import annotations

import numpy as np

BOX_QUESTION = "What is the person in the green bounding box looking at?"
PLAIN_QUESTION = "What is the person looking at?"
BOX_RGB = (0, 255, 0)
BOX_THICKNESS_PX = 2


def draw_prompt(image_rgb: np.ndarray, body_box_xyxy_px: np.ndarray, draw_box: bool = True,
                box_question: str = BOX_QUESTION, plain_question: str = PLAIN_QUESTION,
                thickness: int = BOX_THICKNESS_PX) -> tuple[np.ndarray, str, bool]:
    """(image with the prompt drawn, question, whether the box was drawn). The input is not
    modified. A body box is usable when all four corners are finite and non-negative."""
    import cv2

    box = np.asarray(body_box_xyxy_px, dtype=np.float64)
    usable = draw_box and box.shape == (4,) and bool(np.isfinite(box).all()) and bool((box >= 0).all())
    if not usable:
        return image_rgb, plain_question, False
    image = np.ascontiguousarray(image_rgb).copy()
    x1, y1, x2, y2 = (int(v) for v in box)
    cv2.rectangle(image, (x1, y1), (x2, y2), BOX_RGB, thickness)
    return image, box_question, True


def resize_square(image_rgb: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize to (size, size), aspect ratio not kept (PIL's bicubic, as OFA and the
    BLIP/CLIP image processors use)."""
    from PIL import Image

    if image_rgb.shape[0] == size and image_rgb.shape[1] == size:
        return image_rgb
    return np.array(Image.fromarray(image_rgb).resize((size, size), Image.BICUBIC))
