"""Metrics of the zoo's tasks: pure numpy functions of predictions and targets.

Dense metrics pool all valid pixels of all images given (dataset-level numbers, as the
papers report them), so pass the whole held-out set, or accumulate predictions first.
"""

import numpy as np


def _valid(mask, shape):
    return np.ones(shape, bool) if mask is None else np.broadcast_to(np.asarray(mask, bool), shape)


def depth_metrics(pred, true, mask=None):
    """Depth metrics of Eigen et al. over valid pixels with true depth > 0.

    δ<1.25ᵏ: fraction of pixels with max(p/t, t/p) < 1.25ᵏ (k = 1, 2, 3);
    abs_rel = mean |p − t| / t; rmse = sqrt(mean (p − t)²); mae = mean |p − t|.

    Args:
        pred: array. Predicted depth (positive).
        true: array of the same shape. True depth.
        mask: bool array or None. Valid pixels.

    Returns:
        dict with delta1, delta2, delta3, abs_rel, rmse, mae.
    """
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    valid = _valid(mask, true.shape) & (true > 0)
    p, t = np.maximum(pred[valid], 1e-9), true[valid]
    ratio = np.maximum(p / t, t / p)
    error = p - t
    return {
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
        "abs_rel": float(np.mean(np.abs(error) / t)),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
    }


def normal_metrics(pred, true, mask=None):
    """Angular errors of surface normals, in degrees (Eigen & Fergus; Ren & Lee, NYUD).

    Args:
        pred: array [..., 3]. Predicted normals (any length; normalised here).
        true: array [..., 3]. True unit normals.
        mask: bool array [...] or None. Valid pixels.

    Returns:
        dict with mean_angle, median_angle and within_11_25, within_22_5, within_30
        (fractions of pixels whose error is below 11.25°, 22.5°, 30°).
    """
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    valid = _valid(mask, true.shape[:-1])
    p = pred[valid]
    p = p / np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), 1e-12)
    t = true[valid] / np.maximum(np.linalg.norm(true[valid], axis=-1, keepdims=True), 1e-12)
    angle = np.degrees(np.arccos(np.clip(np.sum(p * t, axis=-1), -1.0, 1.0)))
    return {
        "mean_angle": float(angle.mean()),
        "median_angle": float(np.median(angle)),
        "within_11_25": float(np.mean(angle < 11.25)),
        "within_22_5": float(np.mean(angle < 22.5)),
        "within_30": float(np.mean(angle < 30.0)),
    }


def segmentation_metrics(pred_labels, true_labels, num_classes, mask=None):
    """Mean intersection over union and pixel accuracy.

    mIoU averages IoU_c = |P_c ∩ T_c| / |P_c ∪ T_c| over the classes that occur in the
    prediction or the truth.

    Args:
        pred_labels: int array. Predicted class per pixel.
        true_labels: int array of the same shape.
        num_classes: int.
        mask: bool array or None. Valid pixels.

    Returns:
        dict with miou, pixel_accuracy.
    """
    pred, true = np.asarray(pred_labels), np.asarray(true_labels)
    valid = _valid(mask, true.shape)
    p, t = pred[valid].astype(np.int64), true[valid].astype(np.int64)
    confusion = np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )
    intersection = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    present = union > 0
    return {
        "miou": float(np.mean(intersection[present] / union[present])),
        "pixel_accuracy": float(intersection.sum() / max(confusion.sum(), 1)),
    }


def _f_score(pred_edges, true_edges):
    tp = np.sum(pred_edges & true_edges)
    precision = tp / max(np.sum(pred_edges), 1)
    recall = tp / max(np.sum(true_edges), 1)
    return 0.0 if tp == 0 else float(2 * precision * recall / (precision + recall))


def contour_fscore(probabilities, true_edges, threshold=0.5):
    """Pixel-wise F-score 2PR / (P + R) of edges predicted with probability >= threshold.

    Pixels match exactly (no distance tolerance, unlike the BSDS benchmark).
    """
    return _f_score(np.asarray(probabilities) >= threshold, np.asarray(true_edges) > 0)


def ods_fscore(probabilities, true_edges, thresholds=None):
    """Optimal-dataset-scale F-score: the best F over one threshold shared by all images.

    Args:
        probabilities: array. Edge probabilities of all images.
        true_edges: array of the same shape.
        thresholds: list of float or None. Defaults to 0.01, 0.02, ..., 0.99.

    Returns:
        (best F-score, its threshold).
    """
    thresholds = np.linspace(0.01, 0.99, 99) if thresholds is None else thresholds
    scores = [contour_fscore(probabilities, true_edges, th) for th in thresholds]
    best = int(np.argmax(scores))
    return float(scores[best]), float(thresholds[best])


def accuracy(logits_or_labels, labels):
    """Fraction of correct predictions; logits [N, K] are reduced by argmax."""
    pred = np.asarray(logits_or_labels)
    if pred.ndim == np.asarray(labels).ndim + 1:
        pred = pred.argmax(-1)
    return float(np.mean(pred == np.asarray(labels)))


def frechet_distance(features_a, features_b):
    """The Fréchet distance between Gaussians fitted to two sets of features [N, D]:
    |μa − μb|² + Tr(Σa + Σb − 2 (Σa Σb)^½) (Heusel et al.'s FID when the features are
    Inception's; computed here on whatever features are given, e.g. the zoo's own
    trunk's, and so not comparable with published FIDs).

    Tr((Σa Σb)^½) is the sum of the square roots of the eigenvalues of Σa^½ Σb Σa^½, a
    symmetric positive semi-definite matrix (small negative eigenvalues from rounding are
    taken as 0).

    Args:
        features_a, features_b: arrays [N_a, D] and [N_b, D], N >= 2.

    Returns:
        float >= 0.
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(
            "frechet_distance needs two feature arrays [N, D] of one width D and N >= 2. "
            f"Received shapes {a.shape} and {b.shape}."
        )
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(middle, 0, None)).sum()
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    return float(max(distance, 0.0))
