"""A shared trunk trained on several tasks at once (Doersch & Zisserman 2017; Ren & Lee 2018)."""

import gin
import keras
import tensorflow as tf

from zoo.layers import LassoMix


class MultiTaskModel(keras.Model):
    """Shared trunk, optional lasso mixing of one block's units, one head per task.

    `train_step` takes a dict `{task name: (inputs, targets)}` (e.g. from
    `tf.data.Dataset.zip` of the tasks' pipelines): each task's batch goes through the
    shared trunk and that task's head. Losses are averaged over the *global* batch
    (`tf.nn.compute_average_loss`) so that `tf.distribute` replicas add up to the
    single-device update. Two ways to optimise:

    * `compile(optimizer=...)`: one optimizer on Σ_t w_t L_t + regularisation (the
      lasso penalty), with `loss_weights` w_t (default 1);
    * `compile(task_optimizers={task: optimizer})`: each task's gradients are applied
      by its own optimizer to the trunk, its head and its lasso row (Doersch &
      Zisserman, one RMSProp per task), one task after the other in a step. Call
      `build_optimizers()` inside the strategy scope before `fit`.

    `fit` reports `loss` (the weighted sum), `<task>_loss` and the tasks' own metrics
    (e.g. `rotation_accuracy`). Calling the model on images returns every head's output.

    Args:
        trunk: keras.Model. A zoo trunk (dict of endpoints) with a fixed square input size.
        tasks: list of zoo.tasks.Task.
        lasso_block: str or None. If set (e.g. "block3"), every head reads a LassoMix of
            the units of this block instead of its task's endpoint. Defaults to None.
        lasso_l1: float. L1 weight of the lasso. Defaults to 1e-3.
        loss_weights: dict or None. Task name -> weight (single-optimizer mode).
            Defaults to 1 for every task.
    """

    def __init__(
        self,
        trunk,
        tasks,
        lasso_block=None,
        lasso_l1=1e-3,
        loss_weights=None,
        input_size=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        names = [t.name for t in tasks]
        if not tasks or len(set(names)) != len(names):
            raise ValueError(f"MultiTaskModel needs tasks with distinct names. Received: {names}")
        input_shape = trunk.input.shape
        fixed = input_shape[1] is not None and input_shape[1] == input_shape[2]
        if input_size is None and not fixed:
            raise ValueError(
                "MultiTaskModel needs `input_size` or a trunk built with a fixed square "
                "input_shape, e.g. resnet(..., input_shape=(64, 64, 3)). Received input "
                f"shape {input_shape}."
            )
        unknown = sorted(set(loss_weights or {}) - set(names))
        if unknown:
            raise ValueError(f"loss_weights name unknown tasks {unknown}; tasks: {names}")
        self.trunk = trunk
        self.tasks = {t.name: t for t in tasks}
        self.loss_weights = {n: float((loss_weights or {}).get(n, 1.0)) for n in names}
        self.input_size = int(input_size or input_shape[1])
        self.lasso = None
        if lasso_block is not None:
            keys = [k for k in trunk.output if k.startswith(f"{lasso_block}/unit_")]
            if not keys:
                raise ValueError(
                    f"lasso_block={lasso_block!r} has no units in this trunk; endpoints: "
                    f"{sorted(trunk.output)}"
                )
            self.lasso = LassoMix(names, l1=lasso_l1, name="lasso")
        else:
            missing = {t.name: t.endpoint for t in tasks if t.endpoint not in trunk.output}
            if missing:
                raise ValueError(
                    f"Tasks read endpoints the trunk does not have: {missing}; endpoints: "
                    f"{sorted(trunk.output)}"
                )

        trunk_calls = {}  # one trunk pass per input tensor, shared by the tasks reading it

        def features_of(task):
            def features(images):
                if id(images) not in trunk_calls:
                    trunk_calls[id(images)] = trunk(images)
                endpoints = trunk_calls[id(images)]
                if self.lasso is None:
                    return endpoints[task.endpoint]
                return self.lasso([endpoints[k] for k in keys], task=task.name)

            return features

        # Tasks on whole images share one input (and one trunk pass in `call`); tasks
        # with their own inputs (patch pairs, triplets, other sizes) get their own.
        default = (self.input_size, self.input_size, 3)
        images = keras.Input(default, name="images")
        inputs, outputs = {}, {}
        for t in tasks:
            shape = tuple(t.input_shape(self.input_size))
            inputs[t.name] = images if shape == default else keras.Input(shape, name=t.name)
            outputs[t.name] = t.build_outputs(inputs[t.name], features_of(t), self.input_size)
        self.image_tasks = [n for n in names if inputs[n] is images]
        self.network = None  # no task reads whole images (e.g. relative position alone)
        if self.image_tasks:
            self.network = keras.Model(
                images, {n: outputs[n] for n in self.image_tasks}, name="network"
            )
        self.task_networks = {
            n: keras.Model(inputs[n], outputs[n], name=f"{n}_network") for n in names
        }
        self.task_optimizers = None
        self._loss_trackers = {n: keras.metrics.Mean(name=f"{n}_loss") for n in names}
        self._total_tracker = keras.metrics.Mean(name="loss")
        self._task_metrics = {t.name: t.keras_metrics() for t in tasks}
        # Every variable exists now (the functional networks are built); marking the
        # model built keeps fit, save_weights and tf.distribute from calling it on a
        # {task: batch} dict to build it.
        self.built = True

    def call(self, images, training=False):
        """Every image task's output (tasks with their own inputs use `task_networks`)."""
        if self.network is None:
            raise ValueError(
                f"MultiTaskModel: no task reads whole images ({sorted(self.tasks)}); call "
                "model.task_networks[task] on that task's inputs."
            )
        return self.network(images, training=training)

    def compile(self, optimizer=None, task_optimizers=None, **kwargs):
        """One `optimizer` for the weighted sum, or `task_optimizers` {task: optimizer}."""
        if (optimizer is None) == (task_optimizers is None):
            raise ValueError(
                "MultiTaskModel.compile: give either `optimizer` (one for the weighted sum "
                "of losses) or `task_optimizers` (one per task), not both nor neither."
            )
        if task_optimizers is not None:
            missing = sorted(set(self.tasks) - set(task_optimizers))
            extra = sorted(set(task_optimizers) - set(self.tasks))
            if missing or extra:
                raise ValueError(
                    f"task_optimizers must have one optimizer per task {sorted(self.tasks)}; "
                    f"missing {missing}, unknown {extra}."
                )
            self.task_optimizers = {n: task_optimizers[n] for n in self.tasks}
        kwargs.setdefault("jit_compile", False)
        super().compile(optimizer=optimizer, **kwargs)

    def task_variables(self, name):
        """Variables task `name` trains: the trunk, its head and its own lasso row."""
        other_rows = set()
        if self.lasso is not None:
            other_rows = {
                id(v)
                for t, v in zip(self.lasso.task_names, self.lasso.trainable_variables)
                if t != name
            }
        return [v for v in self.task_networks[name].trainable_variables if id(v) not in other_rows]

    def build_optimizers(self):
        """Builds the optimizer(s) on their variables; call inside the strategy scope.

        Keras builds only `self.optimizer`, and only at the first step: per-task
        optimizers built later fail under MirroredStrategy, and optimizer state is
        skipped when `BackupAndRestore` or `load_weights` restores before the first step.
        """
        if self.task_optimizers is not None:
            for name, optimizer in self.task_optimizers.items():
                optimizer.build(self.task_variables(name))
        elif not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        out = [self._total_tracker, *self._loss_trackers.values()]
        for metrics in self._task_metrics.values():
            out += metrics
        return out

    def _check_batch(self, data):
        if not isinstance(data, dict) or set(data) != set(self.tasks):
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(
                f"MultiTaskModel expects batches {{task: (inputs, targets)}} for tasks "
                f"{sorted(self.tasks)}. Received: {got}"
            )

    def _task_losses(self, data, training):
        """{task: loss averaged over the global batch}, updating the loss trackers."""
        losses = {}
        for name, (inputs, targets) in data.items():
            outputs = self.task_networks[name](inputs, training=training)
            per_example = self.tasks[name].loss(targets, outputs)
            losses[name] = tf.nn.compute_average_loss(per_example)
            self._loss_trackers[name].update_state(tf.reduce_mean(per_example))
            for metric in self._task_metrics[name]:
                metric.update_state(targets, outputs)
        return losses

    def _regularization(self):
        # Each sub-network call resets its layers' losses, so the lasso penalty appears
        # once however many tasks ran.
        if not self.losses:
            return tf.constant(0.0)
        return tf.nn.scale_regularization_loss(tf.add_n(self.losses))

    def train_step(self, data):
        self._check_batch(data)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape(persistent=self.task_optimizers is not None) as tape:
            losses = self._task_losses(data, training=True)
            regularization = self._regularization()
            total = tf.add_n([self.loss_weights[n] * v for n, v in losses.items()])
            total += regularization
            # per-task objectives, recorded by the tape
            objectives = {n: v + regularization for n, v in losses.items()}
        if self.task_optimizers is None:
            variables = self.trainable_variables
            grads = tape.gradient(self.optimizer.scale_loss(total), variables)
            self.optimizer.apply_gradients(zip(grads, variables))
        else:
            for name, optimizer in self.task_optimizers.items():
                variables = self.task_variables(name)
                grads = tape.gradient(objectives[name], variables)
                optimizer.apply_gradients(
                    [(g, v) for g, v in zip(grads, variables) if g is not None]
                )
            del tape
        self._total_tracker.update_state(total * replicas)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        self._check_batch(data)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        losses = self._task_losses(data, training=False)
        total = tf.add_n([self.loss_weights[n] * v for n, v in losses.items()])
        self._total_tracker.update_state(total * replicas)
        return {m.name: m.result() for m in self.metrics}


gin.external_configurable(MultiTaskModel, module="zoo.models")
