"""The data and losses of a shared-trunk graph's tasks: the input groups' training
streams and held-out evaluation (`zoo.methods.graph` makes the groups), and
`TaskLosses`, the tasks' losses with what `fit` logs of them.

A group is the tasks that read one input (`Graph.groups`); its stream is the tasks'
(inputs, targets) batches, checked against the shape the network's input takes.
"""

import keras
import numpy as np
import tensorflow as tf

from zoo.errors import UserError
from zoo.tasks.base import pipeline


def group_stream(network, tasks, group, name, split, batch_size, input_size, labels=()):
    """One input group's (inputs, targets) batches, refused in one line when their
    examples are not the shape the network's input `name` takes.

    Args:
        network: the graph's keras.Model ({input name: batch} inputs).
        tasks: {task name: zoo.tasks.Task}.
        group: the names of the tasks reading input `name`.
        name: str. The input.
        split: "train" (shuffled, repeated) or "eval" (in order, once).
        batch_size: int.
        input_size: int or (height, width). Named in the message.
        labels: example entries added to the targets (`zoo.tasks.base.pipeline`).
    """
    stream = pipeline([tasks[t] for t in group], split, batch_size, labels=labels)
    given = tuple(stream.element_spec[0].shape[1:])
    wanted = tuple(network.input[name].shape[1:])
    if None in given:  # decoded files (TFRecords): the first batch tells
        given = tuple(next(iter(stream.take(1)))[0].shape[1:])
        stream = stream.map(lambda x, y: (tf.ensure_shape(x, (None, *wanted)), y))
    if given != wanted:
        raise UserError(
            f"the {split} data of {group} are {given} per example but the method takes "
            f"{wanted} (input_size={input_size}); set input_size to the data's size, or "
            "render or resize the source to the input size (e.g. SceneSpec.resolution), "
            "or crop it (e.g. ScaleCropFlip.size)."
        )
    return stream


def merged(streams: dict) -> tf.data.Dataset:
    """{input name: (inputs, targets) stream} zipped into ({input name: inputs},
    {task: targets}) batches; ends with the shortest stream."""

    def merge(*batches):
        inputs, targets = {}, {}
        for name, (x, y) in zip(streams, batches):
            inputs[name] = x
            targets.update(y)
        return inputs, targets

    return tf.data.Dataset.zip(tuple(streams.values())).map(merge)


def check_batch(data, groups: dict, tasks: dict, who: str) -> None:
    """Refuses a batch that is not (inputs, targets) with {input name: batch} of every
    group and {task: targets} of every task."""
    ok = (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and isinstance(data[0], dict)
        and set(data[0]) == set(groups)
        and isinstance(data[1], dict)
        and set(data[1]) == set(tasks)
    )
    if not ok:
        raise UserError(
            f"{who} expects batches (inputs, targets) with inputs {sorted(groups)} and "
            f"targets {sorted(tasks)} (see `datasets()`). Received: {type(data).__name__} "
            f"{_describe(data)}"
        )


def heldout(network, tasks, group, name, data):
    """({task: metrics}, {task: examples counted}) of the tasks of `group`, which read
    input `name`, over `data`, their held-out batches, in inference mode (each task's
    `heldout_targets` and `evaluate`)."""
    names = list(group)
    model = keras.Model(network.input[name], {n: network.output[n] for n in names})
    targets = {n: [] for n in names}
    outputs = {n: [] for n in names}
    for x, y in data:
        out = model(x, training=False)
        for n in names:
            predict = lambda inputs, n=n: model(inputs, training=False)[n]  # noqa: E731
            target = tasks[n].heldout_targets(x, y[n], predict)
            outputs[n].append(tf.nest.map_structure(keras.ops.convert_to_numpy, out[n]))
            targets[n].append(tf.nest.map_structure(keras.ops.convert_to_numpy, target))
    results, counts = {}, {}
    for n in names:
        stacked = _stacked(targets[n])
        results[n] = tasks[n].evaluate(stacked, _stacked(outputs[n]))
        counts[n] = int(len(tf.nest.flatten(stacked)[0]))
    return results, counts


def _stacked(batches):
    """The batches (arrays, or dicts of arrays) concatenated along the batch."""
    return tf.nest.map_structure(lambda *parts: np.concatenate(parts), *batches)


def _describe(data):
    if isinstance(data, (tuple, list)):
        return [sorted(d) if isinstance(d, dict) else type(d).__name__ for d in data]
    return sorted(data) if isinstance(data, dict) else ""


class TaskLosses:
    """The task losses of a batch, averaged over the *global* batch (replicas add up to
    the one-device update), and their trackers: `loss` (the weighted total, given by the
    method), `<task>_loss` and the tasks' own metrics (`Task.keras_metrics`).

    Args:
        tasks: {task name: zoo.tasks.Task}.
        momentum: `zoo.methods.momentum.MomentumEncoders` or None: the key networks and
            queues whose outputs are the momentum tasks' targets.
        input_names: {task: the input it reads}.
    """

    def __init__(self, tasks: dict, momentum, input_names: dict):
        self.tasks, self.momentum, self.input_names = tasks, momentum, input_names
        self.trackers = {n: keras.metrics.Mean(name=f"{n}_loss") for n in tasks}
        self.total = keras.metrics.Mean(name="loss")
        self.task_metrics = {n: t.keras_metrics() for n, t in tasks.items()}

    @property
    def metrics(self) -> list:
        """`loss`, each `<task>_loss`, then each task's metrics."""
        out = [self.total, *self.trackers.values()]
        for metrics in self.task_metrics.values():
            out += metrics
        return out

    def __call__(self, inputs: dict, targets: dict, outputs: dict) -> dict:
        """{task: loss} of the heads' `outputs` on a batch ({input name: batch},
        {task: targets}), updating the trackers and metrics."""
        if self.momentum is not None:  # the keys and queues are these tasks' targets
            batches = {n: inputs[self.input_names[n]] for n in self.momentum.tasks}
            given = {n: targets[n] for n in self.momentum.tasks}
            targets = {**targets, **self.momentum.step_targets(batches, given, outputs)}
        losses = {}
        for name, task in self.tasks.items():
            per_example = task.loss(targets[name], outputs[name])
            losses[name] = tf.nn.compute_average_loss(per_example)
            self.trackers[name].update_state(tf.reduce_mean(per_example))
            for metric in self.task_metrics[name]:
                metric.update_state(targets[name], outputs[name])
        return losses

    def track_total(self, total) -> None:
        """Logs a replica's weighted total (averaged over the global batch) as `loss`."""
        self.total.update_state(total * tf.distribute.get_strategy().num_replicas_in_sync)
