"""Gaze-following metrics (docs/design.md, "Metrics"): basic.py (normalisation, argmax, rank AUC,
AP, L2), native_auc.py (the AUC at the original image size), meters.py (per-person metrics and the
meters that accumulate them), score.py (a prediction file against a split)."""

from gazecli.core.metrics.basic import (AUC_RESOLUTIONS, GAZEFOLLOW, VIDEOATT, argmax_points, average_precision,
    l2_distances, protocol_description, rank_auc)
from gazecli.core.metrics.meters import (GazeFollowMeter, VATMeter, gazefollow_metrics, heatmap_grid_auc,
    vat_auc_labels, vat_metrics)
from gazecli.core.metrics.native_auc import multi_hot_pixels, native_auc, upsample_like_skimage
from gazecli.core.metrics.score import check_scores_finite, score_predictions

__all__ = ["AUC_RESOLUTIONS", "GAZEFOLLOW", "VIDEOATT", "GazeFollowMeter", "VATMeter", "argmax_points",
           "average_precision", "check_scores_finite", "gazefollow_metrics", "heatmap_grid_auc", "l2_distances",
           "multi_hot_pixels", "native_auc", "protocol_description", "rank_auc", "score_predictions",
           "upsample_like_skimage", "vat_auc_labels", "vat_metrics"]
