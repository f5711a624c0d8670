"""A shared trunk trained on several tasks at once (Doersch & Zisserman 2017; Ren & Lee 2018)."""

import gin
import keras
import tensorflow as tf

from zoo.errors import UserError
from zoo.methods import groups
from zoo.methods.base import Phase
from zoo.methods.shared_trunk import SharedTrunk, graph_config


class MultiTask(SharedTrunk):
    """A shared trunk, one head per task, optional lasso mixing of one block's units and
    optional per-task players (`zoo.methods.shared_trunk.SharedTrunk` for the graph,
    the batches, the balancer and the held-out evaluation).

    Players: "main" (one optimizer on Σ_t w_t L_t + the lasso penalty), or with
    `per_task_optimizers` one player per task that updates the trunk, its head and its
    own lasso row on L_t + the penalty, one task after the other on the same pass
    (Doersch & Zisserman, one RMSProp per task).

    Args:
        trunk: keras.Model or callable. As SharedTrunk.
        tasks: list of zoo.tasks.Task with distinct names.
        input_size: int or None. As SharedTrunk.
        lasso_block: str or None. If set (e.g. "block3"), every head reads its own row
            of a LassoMix of this block's units instead of its endpoint. Defaults to None.
        lasso_l1: float. L1 weight of the lasso. Defaults to 1e-3.
        loss_weights: dict or None. Task name -> w_t (one-optimizer mode). Defaults to 1.
        per_task_optimizers: bool. One player per task instead of "main". Defaults to False.
        loss_balance: str. "static" or "grad_norm" (one optimizer): as SharedTrunk.
            Defaults to "static".
        balance_steps: int. K of grad_norm. Defaults to 50.
        one_pass: bool. The inputs of all tasks whose trunk images have one size go
            through the trunk as one concatenated batch, the losses computed on their
            slices (CompL's composite step; needs a trunk without BatchNorm, e.g.
            norm="group"). Defaults to False: a trunk pass per input.
    """

    players_share_variables = True  # per-task players all update the trunk

    def __init__(
        self,
        trunk=gin.REQUIRED,
        tasks=gin.REQUIRED,
        input_size: int | None = None,
        lasso_block: str | None = None,
        lasso_l1: float = 1e-3,
        loss_weights: dict | None = None,
        per_task_optimizers: bool = False,
        loss_balance: str = "static",
        balance_steps: int = 50,
        one_pass: bool = False,
        name: str | None = None,
    ):
        if per_task_optimizers and loss_balance == "grad_norm":
            raise UserError(
                "loss_balance='grad_norm' weighs the tasks of one optimizer; with "
                "per_task_optimizers each task has its own (use 'static')."
            )
        self.per_task_optimizers = bool(per_task_optimizers)
        super().__init__(
            trunk,
            tasks,
            input_size=input_size,
            loss_weights=loss_weights,
            loss_balance=loss_balance,
            balance_steps=balance_steps,
            lasso_block=lasso_block,
            lasso_l1=lasso_l1,
            one_pass=one_pass,
            name=name,
        )

    # -- players -------------------------------------------------------------------

    @property
    def players(self):
        return tuple(self.tasks) if self.per_task_optimizers else ("main",)

    def variables_of(self, player):
        if player == "main" or player not in self.tasks:
            return super().variables_of(player)
        other_rows = set()
        if self.lasso is not None:
            other_rows = {
                id(v)
                for t, v in zip(self.lasso.task_names, self.lasso.trainable_variables)
                if t != player
            }
        task = self.task_model(player)
        return [v for v in task.trainable_variables if id(v) not in other_rows]

    def _phases(self):
        if not self.per_task_optimizers:
            return super()._phases()
        return [
            Phase(name, lambda d, p, n=name: p["objectives"][n], through_shared=True)
            for name in self.tasks
        ]

    # -- one task at a time (asynchronous per-task training) --------------------------

    def _check_async(self, task):
        self._check_task(task)
        if not self.per_task_optimizers or self.momentum is not None:
            raise UserError(
                "Training one task at a time (strategy 'parameter_server') needs "
                "MultiTask(per_task_optimizers=True) and no momentum task (their keys "
                "and queues follow the steps of every task); received "
                f"per_task_optimizers={self.per_task_optimizers}, tasks {list(self.tasks)}."
            )

    def task_datasets(self, task: str, batch_size: int) -> tf.data.Dataset:
        """Task `task`'s own training batches, (inputs, {task: targets}), streamed apart
        from the other tasks' (`task_train_step`)."""
        self._check_async(task)
        name = self.input_names[task]
        return groups.group_stream(
            self.network, self.tasks, [task], name, "train", batch_size, self.input_size
        )

    def task_train_step(self, task: str, data) -> tf.Tensor:
        """One step of task `task` alone on a batch of `task_datasets(task)`: its loss
        (plus the model's regularization) through trunk and head, applied by its own
        player; returns the loss. What each worker of Doersch & Zisserman's asynchronous
        setup does (sec. 4): the other tasks' steps run meanwhile on other workers."""
        self._check_async(task)
        inputs, targets = data
        model = self._task_models.setdefault(task, self.task_model(task))
        with tf.GradientTape() as tape:
            outputs = model(inputs, training=True)
            per_example = self.tasks[task].loss(targets[task], outputs)
            loss = tf.nn.compute_average_loss(per_example) + self._regularization()
        self.apply(task, tape, loss)
        return loss

    @property
    def _task_models(self):
        if "_async_task_models" not in self.__dict__:
            self.__dict__["_async_task_models"] = {}  # untracked: the layers are the network's
        return self.__dict__["_async_task_models"]

    def get_config(self):
        return {
            **super().get_config(),
            **graph_config(self),
            "lasso_block": self.lasso_block,
            "lasso_l1": self.lasso_l1,
            "per_task_optimizers": self.per_task_optimizers,
            "one_pass": self.one_pass,
        }


keras.saving.register_keras_serializable(package="zoo")(MultiTask)
# `name`: the Keras model's, which from_config gives
gin.external_configurable(MultiTask, module="zoo.methods", denylist=["name"])
