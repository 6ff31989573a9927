"""GazeFollow AUC at the original image size: skimage-exact bilinear upsampling and the
block-bounded rank AUC (docs/design.md, "Metrics"; the scheme is described in metrics/basic.py)."""

from __future__ import annotations

import math

import numpy as np
import torch

from gazecli.core.data.heatmaps import minmax

_MARGIN = 1e-9  # values lie in [0, 1]; rounding errors of the 4-term sums are ~1e-16


# --------------------------------------------------------------------------------------------
# skimage-exact bilinear upsampling (order 1, mode 'reflect' -> ndimage 'mirror', grid_mode)


def _axis_weights(index: torch.Tensor, n_in: torch.Tensor, n_out: torch.Tensor):
    """For output indices along one axis: (i0, i1, w0, w1), as scipy.ndimage.zoom computes them.

    index, n_in, n_out broadcast together (int64); weights are float64.
    """
    zoom = n_in.double() / n_out.double()
    cc = (index.double() + 0.5) * zoom - 0.5
    cc = torch.where(cc < 0, -cc, cc)  # 'mirror' maps (-0.5, 0) to (0, 0.5)
    start = torch.floor(cc)
    w0 = 1.0 - torch.abs(start - cc)
    w1 = 1.0 - torch.abs(start - cc + 1.0)
    i0 = start.long()
    i1 = i0 + 1
    i1 = torch.where(i1 >= n_in, 2 * n_in - 2 - i1, i1)  # mirror at the far edge
    return i0, i1, w0, w1


def _partner(n: int, device) -> torch.Tensor:
    """i1 for each possible start i0 along an axis of n cells."""
    i0 = torch.arange(n, device=device)
    return torch.where(i0 + 1 >= n, 2 * n - 2 - (i0 + 1), i0 + 1)


def _interp(maps, b, i0, i1, wy0, wy1, j0, j1, wx0, wx1):
    """Bilinear value with scipy's accumulation order; all index tensors broadcast together."""
    t = (maps[b, i0, j0] * wy0) * wx0
    t = t + (maps[b, i0, j1] * wy0) * wx1
    t = t + (maps[b, i1, j0] * wy1) * wx0
    t = t + (maps[b, i1, j1] * wy1) * wx1
    return t


def _gaussian_matrix(n: int, sigma: float, device) -> torch.Tensor:
    """(n, n) matrix of scipy.ndimage.gaussian_filter1d (mode 'mirror', truncate 4)."""
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 / (sigma * sigma) * x * x)
    k /= k.sum()
    m = np.zeros((n, n))
    for i in range(n):
        for off, weight in zip(range(-radius, radius + 1), k):
            j = i + off
            if n > 1:
                period = 2 * n - 2
                j = abs(j) % period
                j = period - j if j >= n else j
            else:
                j = 0
            m[i, j] += weight
    return torch.from_numpy(m).to(device)


def _antialias(maps: torch.Tensor, sizes_hw: torch.Tensor) -> torch.Tensor:
    """skimage's anti-aliasing: a Gaussian pre-filter (sigma = (factor - 1) / 2) on shrinking axes."""
    h, w = maps.shape[-2:]
    out = maps.clone()
    for b in range(maps.shape[0]):
        H, W = int(sizes_hw[b, 0]), int(sizes_hw[b, 1])
        if H >= h and W >= w:
            continue
        m = maps[b]
        sy, sx = max(0.0, (h / H - 1) / 2), max(0.0, (w / W - 1) / 2)
        if sy > 1e-15:
            m = _gaussian_matrix(h, sy, maps.device) @ m
        if sx > 1e-15:
            m = m @ _gaussian_matrix(w, sx, maps.device).T
        out[b] = m
    return out


def upsample_like_skimage(heatmap: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """One map (h, w) -> (height, width), bit-identical to skimage.transform.resize(order=1)
    for upsampling (reference implementation; the metrics avoid materialising it)."""
    x = heatmap.double()[None]
    sizes = torch.tensor([[height, width]], device=x.device)
    x = _antialias(x, sizes)
    h, w = x.shape[-2:]
    rows = torch.arange(height, device=x.device)[:, None]
    cols = torch.arange(width, device=x.device)[None, :]
    i0, i1, wy0, wy1 = _axis_weights(rows, torch.tensor(h), torch.tensor(height))
    j0, j1, wx0, wx1 = _axis_weights(cols, torch.tensor(w), torch.tensor(width))
    out = _interp(x, torch.zeros_like(rows), i0, i1, wy0, wy1, j0, j1, wx0, wx1)
    return out.clamp(heatmap.min().double(), heatmap.max().double())


# --------------------------------------------------------------------------------------------
# GazeFollow


def multi_hot_pixels(gaze_points: torch.Tensor, sizes_hw: torch.Tensor) -> torch.Tensor:
    """(B, A, 2) normalised points (NaN-padded), (B, 2) sizes -> (B, A) flat pixel index, -1 pad.

    Duplicate pixels of one person are set to -1 so each positive pixel counts once.
    """
    valid = torch.isfinite(gaze_points[..., 0])
    H = sizes_hw[:, 0:1].long()
    W = sizes_hw[:, 1:2].long()
    x = torch.where(valid, gaze_points[..., 0], torch.zeros_like(gaze_points[..., 0]))
    y = torch.where(valid, gaze_points[..., 1], torch.zeros_like(gaze_points[..., 1]))
    row = torch.minimum((y * H).long(), H - 1).clamp(min=0)  # int() truncation, as the protocol
    col = torch.minimum((x * W).long(), W - 1).clamp(min=0)
    flat = torch.where(valid, row * W + col, torch.full_like(row, -1))
    # de-duplicate within each person
    s, _ = flat.sort(dim=1)
    dup = torch.zeros_like(s, dtype=torch.bool)
    dup[:, 1:] = s[:, 1:] == s[:, :-1]
    return torch.where(dup | (s < 0), torch.full_like(s, -1), s)


def native_auc(heatmaps: torch.Tensor, sizes_hw: torch.Tensor, gaze_points: torch.Tensor) -> torch.Tensor:
    """GazeFollow AUC at the original image size for a batch of persons.

    heatmaps (B, h, w) any float (min-max normalised here), sizes_hw (B, 2) int (H, W) of the
    images, gaze_points (B, A, 2) normalised annotator points, NaN-padded. Returns (B,) float64.

    AUC = (sum of the positives' average ranks - P(P+1)/2) / (P N); a positive's rank needs the
    number of upsampled pixels below its value (its "threshold") and equal to it. With the
    thresholds sorted, pixels are counted coarse to fine:
    1. the output pixels between the same 4 heatmap values (a "block") lie within the range of
       those 4 values: a block is counted whole for every threshold above that range;
    2. in a block whose range holds thresholds, each output row is linear along the columns:
       a row is counted whole for every threshold above its range;
    3. for a threshold inside a row's range, the pixels below it are those on one side of the
       crossing, a closed form in the column positions;
    4. a row with a pixel within 1e-9 of a threshold (the positive itself, plateaus) is
       evaluated pixel by pixel with scipy's arithmetic, so ties are exactly the literal ones.
    """
    device = heatmaps.device
    x = minmax(heatmaps.double())
    B, h, w = x.shape
    lo = x.flatten(1).min(dim=1).values  # skimage clips its output to the input's range
    hi = x.flatten(1).max(dim=1).values
    sizes_hw = sizes_hw.to(device).long()
    if bool(((sizes_hw[:, 0] < h) | (sizes_hw[:, 1] < w)).any()):
        x = _antialias(x, sizes_hw)
    H, W = sizes_hw[:, 0], sizes_hw[:, 1]
    th, tw = torch.tensor(h, device=device), torch.tensor(w, device=device)
    pos = multi_hot_pixels(gaze_points.to(device).double(), sizes_hw)  # (B, P)
    pos_valid = pos >= 0
    P = pos.shape[1]
    m = _MARGIN

    def take(t, i):
        return t.reshape(-1).index_select(0, i)

    def exact(b, rows, cols):
        """Exact upsampled values at (rows, cols) of persons b (all broadcast together)."""
        i0, i1, wy0, wy1 = _axis_weights(rows, th, H[b])
        j0, j1, wx0, wx1 = _axis_weights(cols, tw, W[b])
        val = _interp(x, b, i0, i1, wy0, wy1, j0, j1, wx0, wx1)
        return torch.minimum(torch.maximum(val, lo[b]), hi[b])

    # thresholds: the exact value at each positive pixel, sorted (+inf pads)
    pr = torch.where(pos_valid, torch.div(pos, W[:, None], rounding_mode="floor"), 0)
    pc = torch.where(pos_valid, pos - pr * W[:, None], 0)
    bidx = torch.arange(B, device=device)[:, None].expand(B, P)
    v = torch.where(pos_valid, exact(bidx, pr, pc), math.inf)
    v, order = v.sort(dim=1)  # (B, P)

    # output rows (cols) grouped by the heatmap row (col) they start from: "runs"
    def runs(n_in: torch.Tensor, n_out: torch.Tensor):
        idx = torch.arange(int(n_out.max()), device=device)[None, :]
        start, _, _, _ = _axis_weights(idx, n_in, n_out[:, None])
        inside = idx < n_out[:, None]
        counts = torch.zeros(B, int(n_in), dtype=torch.long, device=device)
        counts.scatter_add_(1, torch.where(inside, start, 0), inside.long())
        return counts, torch.cumsum(counts, dim=1) - counts

    nrow, row_first = runs(th, H)  # (B, h)
    ncol, col_first = runs(tw, W)  # (B, w)
    z = tw.double() / W.double()  # heatmap columns per output column
    left_mirrored = 0.5 * z - 0.5 < 0  # (B,) the first output columns are mirrored at the edge

    # counts per sorted threshold: `steps` is a difference array (a count added at index k
    # applies to every threshold >= k); `direct` and `equal` go to one threshold each
    steps = torch.zeros(B * (P + 1), dtype=torch.float64, device=device)
    direct = torch.zeros(B * P, dtype=torch.float64, device=device)
    equal = torch.zeros(B * P, dtype=torch.float64, device=device)

    # 1. blocks
    py, px = _partner(h, device), _partner(w, device)
    corners = torch.stack([x, x[:, :, px], x[:, py, :], x[:, py][:, :, px]])  # (4, B, h, w)
    n_block = (nrow[:, :, None] * ncol[:, None, :]).flatten(1)  # (B, h*w)
    k_above = torch.searchsorted(v, corners.amax(dim=0).flatten(1) + m, right=True)
    k_below = torch.searchsorted(v, corners.amin(dim=0).flatten(1) - m, right=False)
    steps.scatter_add_(0, (torch.arange(B, device=device)[:, None] * (P + 1) + k_above).flatten(),
                       n_block.flatten().double())
    blk_b, blk = torch.nonzero((k_above > k_below) & (n_block > 0)).unbind(1)
    blk_y, blk_x = torch.div(blk, w, rounding_mode="floor"), blk % w
    flat = blk_b * (h * w) + blk
    blk_above, blk_below = take(k_above, flat), take(k_below, flat)
    c00, c01, c10, c11 = (take(corners[i], flat) for i in range(4))
    blk_rows = take(nrow, blk_b * h + blk_y)
    blk_first_row = take(row_first, blk_b * h + blk_y)

    # 2. rows of straddling blocks, grouped by block height (a few distinct values)
    pending = []
    for height in torch.unique(blk_rows).tolist():
        g = torch.nonzero(blk_rows == height).flatten()
        b, c = blk_b.index_select(0, g), blk_x.index_select(0, g)
        ar = torch.arange(height, device=device)
        row = blk_first_row.index_select(0, g)[:, None] + ar[None, :]  # (G, height)
        _, _, wy0, wy1 = _axis_weights(row, th, H.index_select(0, b)[:, None])
        k00, k01, k10, k11 = (t.index_select(0, g)[:, None] for t in (c00, c01, c10, c11))
        left = k00 * wy0 + k10 * wy1  # each row's value at column fraction 0
        right = k01 * wy0 + k11 * wy1  # and at fraction 1
        ka, kb = blk_above.index_select(0, g)[:, None], blk_below.index_select(0, g)[:, None]
        vb = v.index_select(0, b)  # (G, P)
        r_above = torch.searchsorted(vb, torch.maximum(left, right) + m, right=True).clamp(kb, ka)
        r_below = torch.searchsorted(vb, torch.minimum(left, right) - m, right=False).clamp(kb, ka)
        n_row = take(ncol, b * w + c)[:, None].double().expand_as(left)  # pixels per row
        base = (b * (P + 1))[:, None]
        steps.index_add_(0, (base + r_above).flatten(), n_row.flatten())  # whole rows, thresholds
        steps.index_add_(0, (base + ka).expand_as(left).flatten(), -n_row.flatten())  # in [r_above, ka)
        hit = torch.nonzero((r_above > r_below).flatten()).flatten()
        if hit.numel():
            gi = torch.div(hit, height, rounding_mode="floor")
            pending.append({"b": b.index_select(0, gi), "c": c.index_select(0, gi), "row": take(row, hit),
                            "left": take(left, hit), "slope": take(right - left, hit),
                            "k": take(r_below, hit), "count": take(r_above - r_below, hit)})
    if not pending:
        return _auc_from_counts(steps, direct, equal, order, pos_valid, H, W)
    cand = {k: torch.cat([d[k] for d in pending]) for k in pending[0]}

    # 3. (row, threshold) pairs with the threshold inside the row's range. A row is linear in
    # the column position: f(t) = left + slope t, and output column j of run c sits at
    # t = (j + 0.5) z - 0.5 - c, so the columns with t <= tau are j <= kappa with
    # kappa = (tau + c + 0.5) / z - 0.5: the crossings at thr -/+ 1e-9 give the count below
    # thr, or show that a pixel is within 1e-9 of it (then: step 4). Nearly flat rows and the
    # mirrored left edge go to step 4 directly.
    cb, cc, cl, cs = cand["b"], cand["c"], cand["left"], cand["slope"]
    n = take(ncol, cb * w + cc).double()
    first = take(col_first, cb * w + cc)
    zb = z.index_select(0, cb)
    easy = (cs.abs() > 1e-6) & ((cc > 0) | ~left_mirrored.index_select(0, cb))
    safe = torch.where(easy, cs, 1.0)
    per = {
        "q": cb * P + cand["k"],  # flat index of the first threshold inside the row's range
        "alpha": 1.0 / (safe * zb),
        "beta_lo": (cc + 0.5) / zb - 0.5 - first + 1 + ((-m) - cl) / safe / zb,
        "beta_hi": (cc + 0.5) / zb - 0.5 - first + 1 + (m - cl) / safe / zb,
        "n": n, "rising": cs > 0, "easy": easy, "b": cb, "first": first, "row": cand["row"],
    }
    ar_c = torch.arange(int(ncol.max()), device=device)
    vflat = v.reshape(-1)
    for j in range(int(cand["count"].max())):
        if j:
            sel = torch.nonzero(cand["count"] > j).flatten()
            d = {k: t.index_select(0, sel) for k, t in per.items()}
        else:
            d = per
        q = d["q"] + j
        thr = vflat.index_select(0, q)
        a = d["alpha"] * thr
        nn = d["n"]
        s_lo = torch.minimum(torch.floor(a + d["beta_lo"]).clamp(min=0), nn)  # columns with t <= crossing
        s_hi = torch.minimum(torch.floor(a + d["beta_hi"]).clamp(min=0), nn)
        sure = d["easy"] & (s_lo == s_hi)
        direct.index_add_(0, q, torch.where(sure, torch.where(d["rising"], s_lo, nn - s_lo), 0.0))
        # 4. rows with a pixel within 1e-9 of the threshold: pixel by pixel, exactly
        u = torch.nonzero(~sure).flatten()
        if u.numel():
            bu = d["b"].index_select(0, u)
            col_ok = ar_c[None, :] < nn.index_select(0, u)[:, None]  # (U, C)
            cols = torch.where(col_ok, d["first"].index_select(0, u)[:, None] + ar_c[None, :], 0)
            val = exact(bu[:, None], d["row"].index_select(0, u)[:, None], cols)
            t = thr.index_select(0, u)[:, None]
            qu = q.index_select(0, u)
            direct.index_add_(0, qu, ((val < t) & col_ok).sum(dim=1).double())
            equal.index_add_(0, qu, ((val == t) & col_ok).sum(dim=1).double())
    return _auc_from_counts(steps, direct, equal, order, pos_valid, H, W)


def _auc_from_counts(steps, direct, equal, order, pos_valid, H, W) -> torch.Tensor:
    B, P = pos_valid.shape
    count_less = torch.cumsum(steps.view(B, P + 1), dim=1)[:, :P] + direct.view(B, P)
    unsort = torch.argsort(order, dim=1)
    count_less = torch.gather(count_less, 1, unsort)
    count_equal = torch.gather(equal.view(B, P), 1, unsort)
    ranks = torch.where(pos_valid, count_less + (count_equal + 1) / 2, 0.0)
    n_pos = pos_valid.sum(dim=1).double()
    n_neg = (H * W).double() - n_pos
    auc = (ranks.sum(dim=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg <= 0)] = math.nan
    return auc
