"""Precise BatchNorm statistics of a method (`Method.precise_batch_norm` documents it)."""

import itertools

import keras
import numpy as np
import tensorflow as tf

from zoo import internals
from zoo.errors import UserError
from zoo.progress import Progress


class PreciseStatistics:
    """One measurement over a method's BatchNorm layers: `run(batches, steps)` sets
    their moving statistics and returns how many layers it set; on any error every
    statistic is back as it was."""

    def __init__(self, method):
        self.method = method
        self.layers = [
            layer
            for layer in internals.all_layers(method)
            if isinstance(layer, keras.layers.BatchNormalization)
        ]
        # a trainable layer's moving mean moves when it runs in training mode: the check
        # that each such layer was also recorded
        self.moving = {
            id(layer): (layer.moving_mean.numpy(), layer.moving_variance.numpy())
            for layer in self.layers
            if layer.trainable
        }
        # layers holding BatchNorm layers inside a SavedModel (an exported trunk)
        self.held = [
            layer
            for layer in internals.all_layers(method)
            if layer.trainable and hasattr(layer, "batch_norm_statistics")
        ]
        self.statistics = [
            v for layer in self.held for pair in layer.batch_norm_statistics() for v in pair
        ]
        self.before = [v.numpy() for v in self.statistics]
        self.sums = {}  # layer id -> [layer, sum of batch means, sum of variances, calls]
        self.held_sums = [0.0] * len(self.statistics)
        self.kept = None  # each held variable's momentum, once read
        self.traced = []  # (layer, mean, variance) of each call, recorded while tracing
        self.calls = []  # the layer of each call, in the order `measured` returns them
        self.measured = tf.function(self._passes)  # one graph: eager passes cost more

    def _passes(self, data):
        self.traced.clear()
        self.method.statistics_passes(data)
        self.calls[:] = [layer for layer, _, _ in self.traced]
        return [(mean, variance) for _, mean, variance in self.traced]

    def _record(self, layer, mean, variance):
        self.traced.append((layer, mean, variance))

    def run(self, batches, steps, progress) -> int:
        line = Progress(steps, "precise BatchNorm statistics") if progress and steps else None
        seen = 0
        try:
            with internals.recording_moments(self.layers, self._record):
                for data in itertools.islice(batches, steps):
                    self._one_batch(data)
                    seen += 1
                    if line is not None:
                        line.update(seen)
            if not seen or (steps is not None and seen < steps):
                raise UserError(
                    f"precise_batch_norm: the data gave {seen} batches; "
                    f"{steps or 'at least one'} were asked for."
                )
            self._check_recorded()
        except BaseException:
            self._restore()
            raise
        finally:
            self.traced.clear()  # symbolic tensors of the traced graph
            if line is not None:
                line.close()
        self._apply(seen)
        return len(self.sums) + sum(len(layer.batch_norm_statistics()) for layer in self.held)

    def _one_batch(self, data):
        for variable in self.statistics:  # one pass leaves (1 - momentum) x the moments
            variable.assign(tf.zeros_like(variable))
        moments = self.measured(data)
        if self.statistics:
            updates = [v.numpy() for v in self.statistics]
            self.held_sums = [total + u for total, u in zip(self.held_sums, updates)]
            if self.kept is None:  # the momentum: a second pass started at 1
                for variable in self.statistics:
                    variable.assign(tf.ones_like(variable))
                self.measured(data)
                self.kept = [
                    float(np.median(v.numpy() - u)) for v, u in zip(self.statistics, updates)
                ]
        for layer, (mean, variance) in zip(self.calls, moments):
            total = self.sums.setdefault(id(layer), [layer, 0.0, 0.0, 0])
            total[1] += mean
            total[2] += variance
            total[3] += 1

    def _check_recorded(self):
        unrecorded = [
            layer.name
            for layer in self.layers
            if id(layer) in self.moving
            and id(layer) not in self.sums
            and not np.array_equal(layer.moving_mean.numpy(), self.moving[id(layer)][0])
        ]
        if unrecorded:
            raise RuntimeError(
                f"precise_batch_norm: BatchNorm layers {unrecorded} ran in training mode but "
                "their batch statistics were not recorded: the installed Keras no longer "
                "computes them where zoo/internals.py `recording_moments` looks."
            )

    def _restore(self):
        for layer in self.layers:
            if id(layer) in self.moving:
                layer.moving_mean.assign(self.moving[id(layer)][0])
                layer.moving_variance.assign(self.moving[id(layer)][1])
        for variable, value in zip(self.statistics, self.before):
            variable.assign(value)

    def _apply(self, seen):
        for layer, means, variances, count in self.sums.values():
            layer.moving_mean.assign(means / count)
            layer.moving_variance.assign(variances / count)
        for variable, total, momentum, value in zip(
            self.statistics, self.held_sums, self.kept or [], self.before
        ):
            if not 0.0 <= momentum < 1.0 - 1e-6:  # a layer the passes did not update
                variable.assign(value)
                continue
            variable.assign(total / seen / (1.0 - momentum))
