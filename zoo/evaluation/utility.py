"""Utility of pretraining (Newell & Deng 2020): the share of labels it saves.

U(n) = n̂ / n − 1, where n̂ is the number of labels a model trained from scratch needs
to reach the metric the pretrained model reaches with n labels. U = 4 at n = 100 means
scratch training needs 500 labels for what finetuning does with 100.
"""

import numpy as np

from zoo.errors import UserError


def utility(scratch_n, scratch_metric, n, metric, higher_is_better=True):
    """Utility U(n) = n̂/n − 1 of finetuned results against a from-scratch curve.

    n̂ is read off the scratch curve by linear interpolation in log n, after making the
    curve monotone (a running best: more labels never count as worse). Where n̂ cannot
    be read off, U is NaN and a reason says why: the finetuned metric is better than
    the best scratch value (the paper greys these regions out), or worse than the
    scratch value at the fewest labels measured (n̂ lies below the curve's range).

    Args:
        scratch_n: array [K]. Label counts of the scratch runs (any order, > 0).
        scratch_metric: array [K]. Their metric (e.g. mean over seeds).
        n: float or array [M]. Label counts of the finetuned runs.
        metric: float or array [M]. Their metric.
        higher_is_better: bool. False for errors such as RMSE. Defaults to True.

    Returns:
        (utilities, reasons): float array [M] (NaN where undefined) and a list of M
        strings, empty where the utility is defined. Scalars in, scalars out.

    Example:

    >>> utility([100, 500, 1000], [0.5, 0.7, 0.8], 100, 0.7)
    (4.0, '')
    """
    scalar = np.ndim(n) == 0 and np.ndim(metric) == 0
    xs, ys = np.asarray(scratch_n, float), np.asarray(scratch_metric, float)
    if xs.ndim != 1 or xs.shape != ys.shape or xs.size < 2 or np.any(xs <= 0):
        raise UserError(
            "utility: the scratch curve needs at least two (n > 0, metric) points of equal "
            f"length. Received n={list(xs.ravel())}, metric={list(ys.ravel())}."
        )
    n, metric = np.broadcast_arrays(np.asarray(n, float), np.asarray(metric, float))
    if np.any(n <= 0):
        raise UserError(f"utility: label counts must be > 0. Received n={n.tolist()}")
    sign = 1.0 if higher_is_better else -1.0
    order = np.argsort(xs)
    log_n, curve = np.log(xs[order]), np.maximum.accumulate(sign * ys[order])
    values, reasons = [], []
    for count, value in zip(n.ravel(), sign * metric.ravel()):
        if value > curve[-1]:
            best = sign * curve[-1]
            reasons.append(
                f"the finetuned metric {sign * value:g} is better than the best scratch value "
                f"{best:g} (n={xs[order][np.argmax(curve)]:g}): no scratch count reaches it"
            )
            values.append(np.nan)
            continue
        if value < curve[0]:
            reasons.append(
                f"the finetuned metric {sign * value:g} is worse than scratch with the fewest "
                f"labels measured (n={xs[order][0]:g}): n̂ is below the curve's range"
            )
            values.append(np.nan)
            continue
        i = int(np.argmax(curve >= value))  # first point that reaches the value
        if i == 0 or curve[i] == curve[i - 1]:
            n_hat = np.exp(log_n[i])
        else:
            t = (value - curve[i - 1]) / (curve[i] - curve[i - 1])
            n_hat = np.exp(log_n[i - 1] + t * (log_n[i] - log_n[i - 1]))
        values.append(n_hat / count - 1.0)
        reasons.append("")
    values = np.array(values).reshape(n.shape)
    if scalar:
        return float(values), reasons[0]
    return values, reasons
