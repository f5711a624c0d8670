"""A trunk trained on one `zoo.tasks` task under a transfer protocol.

A transfer run is (trunk, task, protocol): the protocol is a policy on the trunk's
trainability and on the task's head, nothing else; data, loss, metrics and serving
outputs are the task's own. `zoo.evaluation.transfer` (one sweep cell) and
`zoo-finetune` (a resumable run, exported for TF Serving) both train this method.

Protocols (`zoo.trunks.protocols.set_trainable`):

* `linear`: trunk frozen (BatchNorm in inference mode);
* `lasso_linear`: trunk frozen, the head reads a new LassoMix row over the units of
  `lasso_block` (Doersch & Zisserman's "eval lasso"; global tasks);
* `finetune`: every weight trained;
* `frozen_k`: the stem and the first k stages frozen, the rest trained (Newell & Deng
  Fig. 8).

Heads (`head`):

* `task`: the task's own head (a global task: pooled features and a dense layer; a
  dense task: Ren & Lee's deconvolutions to the input resolution);
* `coarse`: dense tasks: a 1x1 convolution at the endpoint's resolution, the targets
  brought down to it (Newell & Deng sec. 7); global tasks: as `task`;
* `up_projection`: dense tasks: Laina et al.'s three up-projection blocks, 8x the
  endpoint's resolution (Doersch & Zisserman sec. 5).

Global tasks pool with `pooling`: "global" (average) or "max3x3" (Doersch & Zisserman's
linear evaluation).
"""

import gin
import keras

from zoo.errors import UserError
from zoo.layers import up_projection_decoder
from zoo.methods import graph
from zoo.methods.base import deserialize, serialize
from zoo.methods.shared_trunk import SharedTrunk
from zoo.tasks.base import DenseTask, Task
from zoo.trunks.protocols import POOLINGS, PROTOCOLS, pool, set_trainable

HEADS = ("task", "coarse", "up_projection")


class Transfer(SharedTrunk):
    """A trunk, one task, a protocol and a head policy (see the module docstring).

    Args:
        trunk: keras.Model or callable. A zoo trunk (e.g. `protocols.load_trunk(source)`)
            or a builder called with `input_shape=`.
        task: zoo.tasks.Task.
        protocol: str. One of PROTOCOLS. Defaults to "finetune".
        head: str. One of HEADS. Defaults to "task".
        pooling: str. Global tasks: "global" or "max3x3". Defaults to "global".
        frozen_stages: int. k of frozen_k. Defaults to 1.
        lasso_block: str. Block whose units lasso_linear mixes. Defaults to "block3".
        lasso_l1: float. Lasso penalty of lasso_linear. Defaults to 1e-3.
        input_size: int or None. Defaults to the trunk's input size.
    """

    def __init__(
        self,
        trunk=gin.REQUIRED,
        task: Task = gin.REQUIRED,
        protocol: str = "finetune",
        head: str = "task",
        pooling: str = "global",
        frozen_stages: int = 1,
        lasso_block: str = "block3",
        lasso_l1: float = 1e-3,
        input_size: int | None = None,
        name: str | None = None,
    ):
        if trunk is gin.REQUIRED or task is gin.REQUIRED:
            raise UserError("Transfer needs a `trunk` (or trunk builder) and a `task`.")
        task = deserialize(task) if isinstance(task, dict) else task
        if not isinstance(task, Task):
            raise UserError(f"Transfer: `task` must be a zoo.tasks.Task. Received: {task!r}")
        for key, value, allowed in (
            ("protocol", protocol, PROTOCOLS),
            ("head", head, HEADS),
            ("pooling", pooling, POOLINGS),
        ):
            if value not in allowed:
                raise UserError(f"Transfer: `{key}` must be one of {allowed}. Received: {value!r}")
        dense = isinstance(task, DenseTask)
        if dense and protocol == "lasso_linear":
            raise UserError(
                f"Transfer: lasso_linear is a protocol of global tasks; {task.name!r} is "
                "dense: use linear, finetune or frozen_k."
            )
        if not dense and not hasattr(task, "classes"):
            raise UserError(
                f"Transfer: {task.name!r} is neither a global task (a label per image) nor a "
                "dense one (a map per image)."
            )
        trunk, size = graph.resolve_trunk(trunk, [task], input_size, "Transfer")
        self.protocol, self.head, self.pooling = protocol, head, pooling
        self.frozen_stages = frozen_stages
        if dense and head != "task":
            task = self._coarse_task(task, trunk, size)
        set_trainable(trunk, protocol, frozen_stages)
        super().__init__(
            trunk,
            [task],
            input_size=size,
            lasso_block=lasso_block if protocol == "lasso_linear" else None,
            lasso_l1=lasso_l1,
            name=name,
        )
        self.lasso_block = lasso_block  # the protocol decides whether a row reads it

    @property
    def task(self) -> Task:
        """The one task."""
        return next(iter(self.tasks.values()))

    def _coarse_task(self, task, trunk, size):
        """The task with its targets at the head's resolution."""
        endpoint = task.endpoint or list(trunk.output)[-1]
        if endpoint not in trunk.output:
            raise UserError(f"endpoint {endpoint!r} is not in the trunk: {sorted(trunk.output)}")
        shape = trunk.compute_output_spec(keras.KerasTensor((1, size, size, 3)))[endpoint].shape
        factor = 8 if self.head == "up_projection" else 1
        stride = size // (shape[1] * factor) if shape[1] * factor <= size else 0
        if stride < 1 or stride * shape[1] * factor != size:
            raise UserError(
                f"Transfer: the {self.head} head predicts at {shape[1] * factor} px, which "
                f"does not divide the {size} px input; choose another endpoint."
            )
        config = {**task.get_config(), "target_stride": stride}
        return type(task).from_config(config)

    def _head(self, task, endpoint, features, input_size):

        name = task.name
        if not isinstance(task, DenseTask):
            pooled = pool(features, self.pooling, name)
            return keras.layers.Dense(task.classes, name=f"{name}_logits")(pooled)
        if self.head == "coarse":
            return keras.layers.Conv2D(task.out_channels, 1, name=f"{name}_out")(features)
        if self.head == "up_projection":
            return up_projection_decoder(features, task.out_channels, name=f"{name}_upproj")
        return super()._head(task, endpoint, features, input_size)

    def get_config(self):
        return {
            **super().get_config(),
            "trunk": serialize(self.trunk),
            "task": serialize(self.task),
            "protocol": self.protocol,
            "head": self.head,
            "pooling": self.pooling,
            "frozen_stages": self.frozen_stages,
            "lasso_block": self.lasso_block,
            "lasso_l1": self.lasso_l1,
            "input_size": self.input_size,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # configs written when Transfer derived from MultiTask carry its one task's
        # loss weight, 1 unless set from Python
        weights = config.pop("loss_weights", None) or {}
        if any(float(w) != 1.0 for w in weights.values()):
            raise UserError(
                f"this Transfer config weighs its task's loss by {weights}; Transfer no "
                "longer takes loss_weights (scale the learning rate instead)."
            )
        return cls(**config)


keras.saving.register_keras_serializable(package="zoo")(Transfer)
# `name`: the Keras model's, which from_config gives
gin.external_configurable(Transfer, module="zoo.methods", denylist=["name"])
