"""The interface of tasks whose targets come from a key network (MoCo v2, DenseCL, BYOL).

A `MomentumTask` declares what the method's momentum part (`zoo.methods.momentum`)
needs; the method builds that part for exactly the tasks that are `MomentumTask`s:

* `key_view(inputs)`: the images the key network embeds, from a batch of the task's
  inputs (MoCo: the second view; BYOL: both views).
* `key_head(network)`: the part of the task's head that the key network copies, found
  in the method's network (MoCo: the whole projection head; BYOL: the projector, not
  the predictor).
* `momentum_schedule()`: τ of the key network's update k ← τ·k + (1 − τ)·q at each step
  (`MomentumSchedule`: constant for MoCo, BYOL's cosine increase to 1).
* `queue_size`, `queue_depth()`, `queue_entries(keys)`: FIFO queues of past keys
  (MoCo's negatives); none by default.
* `indexed_queues`: True for a memory bank instead — one slot per training image,
  written at the image's index, which the task's own targets are (or their "index"
  entry; other entries are passed on: CMC's negatives, drawn with the data) (CompL's
  key bank);
  `slot_update(old, new)`: what a slot becomes (default: the new key; CMC mixes them);
  `prefilled_queues`: the bank starts full of `queue_initializer`'s random entries (CMC)
  instead of empty.
* `key_network`: False for a task whose stored keys are its own outputs, detached (CMC's
  bank of the embeddings themselves): no copy of trunk and head, no "key" target.

The method gives the task, as its targets, {"key": the key network's outputs for
`key_view(inputs)`, <queue>: [queue_size, depth] past keys, <queue>_filled: [queue_size]
bool} (no gradient flows into any of them), and with `indexed_queues` "index": the
images' indices (the task's targets from its data).
"""

import dataclasses
import math

import keras
import tensorflow as tf

from zoo import checks
from zoo.tasks.base import Task


@dataclasses.dataclass(frozen=True)
class MomentumSchedule:
    """τ at each step of the key network's update k ← τ·k + (1 − τ)·q.

    Args:
        base: float in [0, 1). τ at the first step.
        steps: int >= 1 or None. None: τ stays `base` (MoCo). K: τ rises from `base` to
            1 by a cosine over K steps, τ_k = 1 − (1 − base)·(cos(πk/K) + 1)/2, and stays 1
            after (BYOL, Grill et al. 2020, sec. 3.2; K is the run's number of steps).
    """

    base: float
    steps: int | None = None

    def __post_init__(self):
        checks.number_in(self.base, "momentum", 0, 1, high_open=True)
        checks.int_at_least(self.steps, 1, "momentum_steps", none=True)

    @property
    def constant(self) -> bool:
        return self.steps is None

    def __call__(self, step):
        """τ at `step` (an int or a scalar tensor), as a float32 tensor."""
        if self.constant:
            return tf.constant(self.base, tf.float32)
        progress = tf.minimum(tf.cast(step, tf.float32) / float(self.steps), 1.0)
        return 1.0 - (1.0 - self.base) * (tf.cos(math.pi * progress) + 1.0) / 2.0


class MomentumTask(Task):
    """A task whose targets are a key network's outputs (module docstring).

    Subclasses with a key network set `momentum` (τ, or the first τ of a schedule) in
    their constructor and define `key_view`.
    """

    momentum: float = None
    queue_size: int = 0
    # queues with a slot per training image, written at the image's index (the task's
    # targets), instead of first in, first out
    indexed_queues: bool = False
    # False: the keys stored are the task's own outputs (no key network)
    key_network: bool = True
    # a bank that starts full of `queue_initializer`'s entries instead of empty
    prefilled_queues: bool = False

    def key_view(self, inputs):
        """The images the key network embeds, from a batch of the task's inputs.
        Defaults to the inputs."""
        return inputs

    def key_head(self, network: keras.Model) -> keras.Model:
        """The part of this task's head that the key network copies, found in the
        method's `network`. Defaults to the model `build_head` made, named
        `<name>_head`."""
        return network.get_layer(f"{self.name}_head")

    def momentum_schedule(self) -> MomentumSchedule:
        """τ at each step. Defaults to `momentum` at every step."""
        return MomentumSchedule(self.momentum)

    def queue_depth(self) -> dict:
        """{queue: width of its keys}. Defaults to no queue."""
        return {}

    def queue_entries(self, key_outputs) -> dict:
        """{queue: [B, depth]} what a step's keys add to each queue."""
        return {}

    def slot_update(self, old, new):
        """A bank's slots after a step ([B, depth] each): their `old` entries and the
        step's `new` keys. Defaults to the new keys."""
        return new

    def queue_initializer(self, queue: str, depth: int):
        """The initializer of a prefilled bank's entries. Defaults to zeros."""
        return "zeros"
