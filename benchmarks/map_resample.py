"""Per-person map resampling (a 30x30 Grad-CAM -> 64x64, as the dataset does for every sample):
the old cv2.warpAffine (fixed-point 1/32-px coordinates) versus the exact separable bilinear
matrices of gazecli/core/data/resample.py, whole maps and random crop windows.

    python benchmarks/map_resample.py              # 20,000 maps of each kind
    python benchmarks/map_resample.py --maps 2000

Prints microseconds per map for both, and the largest deviation of each from
F.interpolate(align_corners=False) + min-max, as a fraction of the map's range (whole maps).
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from gazecli.core.data.resample import resample_bilinear


def old_warp(raw: np.ndarray, region, size: int) -> np.ndarray:
    """The replaced implementation (kept here only to measure it)."""
    gh, gw = raw.shape
    x0, y0, x1, y1 = region
    sx, sy = (x1 - x0) * gw / size, (y1 - y0) * gh / size
    affine = np.array([[sx, 0.0, x0 * gw + 0.5 * sx - 0.5], [0.0, sy, y0 * gh + 0.5 * sy - 0.5]])
    return cv2.warpAffine(raw, affine, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def minmax(x: np.ndarray) -> np.ndarray:
    return (x - x.min()) / (x.max() - x.min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=20000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    raws = (rng.random((args.maps, 30, 30)) ** 3).astype(np.float32)
    lo = rng.uniform(0, 0.4, size=(args.maps, 2))
    hi = lo + rng.uniform(0.3, 0.6, size=(args.maps, 2))
    regions = [(0.0, 0.0, 1.0, 1.0)] * args.maps, [(a[0], a[1], b[0], b[1]) for a, b in zip(lo, hi)]
    for name, regs in zip(("whole map", "crop window"), regions):
        for label, fn in (("old warpAffine", old_warp), ("exact bilinear", resample_bilinear)):
            start = time.perf_counter()
            for raw, reg in zip(raws, regs):
                fn(raw, reg, 64)
            us = (time.perf_counter() - start) / args.maps * 1e6
            print(f"{name:12s} {label:15s} {us:7.1f} us/map")
    worst = {"old warpAffine": 0.0, "exact bilinear": 0.0}
    for raw in raws[:2000]:
        ref = minmax(F.interpolate(torch.from_numpy(raw)[None, None].double(), size=64, mode="bilinear",
                                   align_corners=False)[0, 0].numpy())
        for label, fn in (("old warpAffine", old_warp), ("exact bilinear", resample_bilinear)):
            worst[label] = max(worst[label], float(np.abs(minmax(fn(raw, (0.0, 0.0, 1.0, 1.0), 64)) - ref).max()))
    for label, value in worst.items():
        print(f"largest deviation from interpolate + min-max ({label}): {value:.2e} of the range")


if __name__ == "__main__":
    main()
