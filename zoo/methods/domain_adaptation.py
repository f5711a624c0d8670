"""Ren & Lee (2018): multi-task learning on synthetic images with feature-level adversarial
domain adaptation to unlabelled real images (sec. 3.2, Algorithm 1).

Synthetic batches go through the trunk B and the task heads H as in `SharedTrunk`. At the
adapted endpoint (`adapt_at`, the paper's conv5) a patch discriminator D scores every
patch of the features with P(synthetic). Each train step (Algorithm 1):

1. z_x = B(x) for the synthetic batch, z_y = B(y) for the real batch;
2. **D's phase** (`d_steps` updates, B frozen: features detached): D minimises
   L_D = −mean log D(z_x) − mean log(1 − D(z_y)) (synthetic 1, real 0), on features
   drawn through an optional history pool of past features;
3. **B and H's phase** (D frozen): they minimise Σ_t λ_t L_t(x) + w · (−mean log(1 −
   D(z_x))): the adversarial term **flips the label**, so synthetic features should
   look real. Real images reach B only through D, unless `bi_fool` adds
   −mean log D(z_y) (real features should look synthetic; Tab. 3 row 9).

`train_step` is these phases on `Method.alternate`: one shared pass (step 1), D's phase
on its detached outputs, B and H's phase through it. The authors' code runs D's update
first and then B and H's, as here (the paper lists
them the other way round; one step apart, the two orders are the same algorithm). D is
called on the synthetic and on the real features separately, as pix2pix does, so its
BatchNorm statistics never mix the domains and real images cannot reach the trunk's
gradient through them. Real images do pass through the trunk in training mode, so they
move its BatchNorm moving statistics (which inference on real images then uses), never
its weights.

Loss balancing is SharedTrunk's (`loss_balance`): "static" λ_t = `loss_weights`, or
"grad_norm", λ_t fixed after `balance_steps` steps so that the tasks' gradients at the
shared features have equal mean norms (sec. 3.2: "weights to scale their gradients to
have similar magnitude"); λ is logged every epoch (`lambda_<task>`).

Batch structure: `(inputs, targets)` as SharedTrunk, with `inputs["real"]` a batch of
real images harmonized like the synthetic ones (`datasets()` builds it).
Players: "main" (trunk and heads; Ren & Lee's code: Adam) and "discriminator" (SGD with
momentum in the code). `fit` reports the task losses, `loss`, `d_loss`, `d_accuracy`
(the share of patches D classifies right, before its update), `adversarial_loss` and λ.
"""

from collections.abc import Callable, Sequence

import gin
import keras
import tensorflow as tf

from zoo import checks
from zoo import losses as zoo_losses
from zoo.data import sources
from zoo.errors import UserError
from zoo.layers import patch_discriminator
from zoo.layers.discriminator import WIDTHS
from zoo.methods.base import Phase
from zoo.methods.shared_trunk import SharedTrunk, graph_config
from zoo.tasks.base import Task
from zoo.trunks.alexnet import analogue


class DomainAdversarial(SharedTrunk):
    """A shared trunk and heads on synthetic images + a patch discriminator at `adapt_at`
    (module docstring).

    Args:
        trunk: keras.Model or callable. A zoo trunk or a builder (`@zoo.trunks.alexnet`).
        tasks: list of zoo.tasks.Task reading the same synthetic examples (one batch,
            one trunk pass: Ren & Lee's contours, depth and normals of one scene).
        input_size: int or None. As SharedTrunk.
        real: a zoo.data source, a folder of images, or None. The unlabelled real
            images (entry "image" at input_size). Defaults to None: random crops of the
            adaptation photographs (`zoo.data.sources.real_crops("train", input_size)`).
        adapt_at: str. The endpoint D reads: a trunk endpoint, or an AlexNet layer
            "conv1" .. "conv7", which on a ResNet means its analogue
            (`zoo.trunks.alexnet.RESNET_ANALOGUES`). Defaults to "conv5" (the paper's).
        adversarial_weight: float. w of the adversarial term. Defaults to 1.0 (the
            paper's formula; the authors' code uses 0.05).
        bi_fool: bool. Also push real features to look synthetic. Defaults to False.
        d_steps: int. Discriminator updates per step (k). Defaults to 1.
        history_pool: int. Size of a pool of past features D also sees (pix2pix's image
            pool, 128 in the authors' code; the paper leaves it to future work), 0 for
            none. One replica only. Defaults to 0.
        discriminator_widths: three ints. Defaults to (64, 128, 256).
        joint_statistics: bool. One trunk pass over the synthetic and the real batch
            together, so that BatchNorm standardises both with the same statistics.
            With separate passes (Algorithm 1's z_x = B(x), z_y = B(y); the default)
            each domain's batch is standardised by its own, so at an endpoint that a
            BatchNorm ends (every AlexNet endpoint) both domains have the same
            per-channel mean and variance in training and D must find other
            differences; jointly, real images reach the trunk's update through the
            shared statistics (never through a loss of their own unless `bi_fool`),
            and the heads also run on the real batch. Defaults to False.
        loss_balance: str. "static" or "grad_norm". Defaults to "static".
        loss_weights: dict or None. λ per task name (static mode, and the first
            `balance_steps` of grad_norm). Defaults to 1 each.
        balance_steps: int. K of grad_norm. Defaults to 50.
    """

    def __init__(
        self,
        trunk: keras.Model | Callable = gin.REQUIRED,
        tasks: Sequence[Task] = gin.REQUIRED,
        input_size: int | None = None,
        real=None,
        adapt_at: str = "conv5",
        adversarial_weight: float = 1.0,
        bi_fool: bool = False,
        d_steps: int = 1,
        history_pool: int = 0,
        discriminator_widths=WIDTHS,
        joint_statistics: bool = False,
        loss_balance: str = "static",
        loss_weights: dict | None = None,
        balance_steps: int = 50,
        name: str | None = None,
    ):
        checks.int_at_least(d_steps, 1, "d_steps", "DomainAdversarial")
        checks.int_at_least(history_pool, 0, "history_pool", "DomainAdversarial")
        checks.number_in(adversarial_weight, "adversarial_weight", 0, who="DomainAdversarial")
        super().__init__(
            trunk,
            tasks,
            input_size=input_size,
            loss_weights=loss_weights,
            loss_balance=loss_balance,
            balance_steps=balance_steps,
            name=name,
        )
        if len(self.groups) != 1:
            raise UserError(
                "DomainAdversarial adapts one stream of synthetic images: its tasks must read "
                "the same examples as they are (same source, harmonizer and seed, e.g. "
                f"Contours, Depth, Normals of one SceneSpec). Their inputs: {self.groups}"
            )
        self.group = next(iter(self.groups))
        self.adapt_at = adapt_at
        self.adapt_endpoint = analogue(adapt_at, self.trunk.output)
        self.adversarial_weight = float(adversarial_weight)
        self.bi_fool = bool(bi_fool)
        self.d_steps, self.history_pool = d_steps, history_pool
        self.discriminator_widths = tuple(discriminator_widths)
        self.joint_statistics = bool(joint_statistics)
        self.real = _real_source(real, self.input_size)

        adapted = self._trunk_features.value[self.group][self.adapt_endpoint]
        self.train_network = keras.Model(
            self.network.input,
            {**self.train_network.output, "adapted": adapted},
            name="train_network",
        )
        self.adapted_trunk = keras.Model(
            self.trunk.input, self.trunk.output[self.adapt_endpoint], name="adapted_trunk"
        )
        self.discriminator = patch_discriminator(
            tuple(adapted.shape[1:]), self.discriminator_widths
        )
        if history_pool:
            self._pools = _history_pools(self.add_weight, (history_pool, *adapted.shape[1:]))
        self._d_loss = keras.metrics.Mean(name="d_loss")
        self._d_accuracy = keras.metrics.Mean(name="d_accuracy")
        self._adversarial = keras.metrics.Mean(name="adversarial_loss")

    # -- players -------------------------------------------------------------------

    @property
    def players(self):
        return ("main", "discriminator")

    def variables_of(self, player):
        if player == "main":
            return self.train_network.trainable_variables
        if player == "discriminator":
            return self.discriminator.trainable_variables
        raise UserError(f"unknown player {player!r}; players: {list(self.players)}")

    # -- data ----------------------------------------------------------------------

    def real_images(self, batch_size: int) -> tf.data.Dataset:
        """Batches of real images, shuffled, repeated and harmonized like the tasks'."""
        first = self.tasks[self.groups[self.group][0]]
        return _real_images(self.real, first, self.input_size, batch_size)

    def datasets(self, batch_size: int, split: str = "train") -> tf.data.Dataset:
        """SharedTrunk's (inputs, targets) with `inputs["real"]` added ("train"; "eval" is
        synthetic only)."""
        synthetic = super().datasets(batch_size, split)
        if split != "train":
            return synthetic
        if self.history_pool and batch_size > self.history_pool:
            raise UserError(
                f"DomainAdversarial: history_pool ({self.history_pool}) must hold at least one "
                f"batch ({batch_size})."
            )
        real = self.real_images(batch_size)
        return tf.data.Dataset.zip(synthetic, real).map(lambda s, r: ({**s[0], "real": r}, s[1]))

    def _check_batch(self, data):
        if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], dict):
            data = ({k: v for k, v in data[0].items() if k != "real"}, data[1])
        super()._check_batch(data)

    def statistics_passes(self, data):
        """The passes of `train_step`: the synthetic groups through trunk and heads and
        the real batch through the trunk up to `adapt_at` (or one pass over both with
        `joint_statistics`); the discriminator is not part of the inference network."""
        self._check_batch(data)
        inputs = data[0]
        real = inputs["real"]
        synthetic = {k: v for k, v in inputs.items() if k != "real"}
        if self.joint_statistics:
            images = synthetic[self.group]
            self.network({**synthetic, self.group: tf.concat([images, real], 0)}, training=True)
        else:
            self.network(synthetic, training=True)
            to_trunk = self.tasks[self.groups[self.group][0]].to_trunk
            self.adapted_trunk(to_trunk(real), training=True)

    # -- training ------------------------------------------------------------------

    @property
    def metrics(self):
        return [*super().metrics, self._d_loss, self._d_accuracy, self._adversarial]

    def _pooled(self, domain, features, seed):
        """`features` through the domain's history pool (`_pool_step`), if any."""
        if not self.history_pool:
            return features
        if tf.distribute.get_strategy().num_replicas_in_sync > 1:
            raise UserError("DomainAdversarial: `history_pool` works on one replica only.")
        return _pool_step(*self._pools[domain], features, seed)

    def _phases(self):
        """Algorithm 1 on the shared pass: D's phase on its detached features (`d_steps`
        updates), then B and H's phase through the pass with D frozen."""
        return [
            Phase(
                "discriminator",
                _discriminator_loss(self.discriminator, self._d_accuracy, self._d_loss),
                steps=self.d_steps,
            ),
            Phase(
                "main",
                self._main_loss,
                through_shared=True,
                update=lambda tape, total, p: self._update_main(tape, total, p["out"]["taps"]),
            ),
        ]

    def _shared_pass(self, data, tape):
        """z_x = B(x) with the heads' outputs, z_y = B(y) (recorded only with bi_fool),
        and what D's phase sees: both detached, through the history pools."""
        if "real" not in data[0]:
            raise UserError("DomainAdversarial.train_step needs inputs['real'] (see datasets()).")
        inputs = data[0]
        real = inputs["real"]
        synthetic = {k: v for k, v in inputs.items() if k != "real"}
        to_trunk = self.tasks[self.groups[self.group][0]].to_trunk
        if self.joint_statistics:
            # one pass over both batches: BatchNorm statistics shared by the domains
            images = synthetic[self.group]
            both = self.train_network({self.group: tf.concat([images, real], 0)}, training=True)
            count = tf.shape(images)[0]
            out = dict(both, tasks={k: v[:count] for k, v in both["tasks"].items()})
            z_syn, z_real = both["adapted"][:count], both["adapted"][count:]
        else:
            out = self.train_network(synthetic, training=True)
            z_syn = out["adapted"]
            if self.bi_fool:
                z_real = self.adapted_trunk(to_trunk(real), training=True)
            else:
                with tape.stop_recording():
                    z_real = self.adapted_trunk(to_trunk(real), training=True)
        with tape.stop_recording():
            step = tf.cast(self.player_optimizers["main"].iterations, tf.int64)
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            seeds = tf.unstack(tf.random.split(tf.stack([step, tf.cast(replica, tf.int64)]), 2))
            d_syn = self._pooled("synthetic", tf.stop_gradient(z_syn), seeds[0])
            d_real = self._pooled("real", tf.stop_gradient(z_real), seeds[1])
        return {"out": out, "z_syn": z_syn, "z_real": z_real, "d_syn": d_syn, "d_real": d_real}

    def _main_loss(self, data, passed):
        """Σ_t λ_t L_t + w · the adversarial term (flipped labels; D as just updated)."""
        synthetic = {k: v for k, v in data[0].items() if k != "real"}
        losses = self.task_losses(synthetic, data[1], passed["out"]["tasks"])
        fool = zoo_losses.fool_loss(self.discriminator(passed["z_syn"], training=True))
        adversarial = tf.nn.compute_average_loss(fool)
        shown = tf.reduce_mean(fool)
        if self.bi_fool:
            back = zoo_losses.bi_fool_loss(self.discriminator(passed["z_real"], training=True))
            adversarial += tf.nn.compute_average_loss(back)
            shown += tf.reduce_mean(back)
        self._adversarial.update_state(shown)
        total = self.balancer.total(losses)
        return total + self.adversarial_weight * adversarial + self._regularization()

    # -- configuration -------------------------------------------------------------

    def get_config(self):
        config = {**super().get_config(), **graph_config(self)}
        config.update(
            real=sources.source_config(self.real),
            adapt_at=self.adapt_at,
            adversarial_weight=self.adversarial_weight,
            bi_fool=self.bi_fool,
            d_steps=self.d_steps,
            history_pool=self.history_pool,
            discriminator_widths=list(self.discriminator_widths),
            joint_statistics=self.joint_statistics,
        )
        return config


def _real_source(real, input_size):
    """The real images' source (the adaptation photographs' crops by default), refused
    when its images are not input_size squares."""
    if real is None:
        real = sources.real_crops("train", input_size)
    elif isinstance(real, dict):
        real = sources.source_from_config(real)
    real = sources.as_source(real, None, "DomainAdversarial (real images)")
    real.check(["image"], "DomainAdversarial (real images)")
    shape = tuple(real.signature()["image"][1])
    if shape[:2] != (input_size, input_size) and None not in shape[:2]:
        raise UserError(
            f"DomainAdversarial: the real images of {real} are {shape[0]}x{shape[1]} but "
            f"the method takes {input_size} px; crop or resize them (e.g. "
            f"zoo.data.real_photos(crop={input_size}))."
        )
    return real


def _real_images(real, task, size, batch_size):
    """Batches of `real`'s images, shuffled, repeated and harmonized as `task`'s."""
    real.prepare(["image"])
    ds = real.shuffled(["image"], task.seed + 1).map(lambda i, e: e).repeat()
    seeds = tf.data.Dataset.random(seed=task.seed + 2).batch(2)

    @tf.autograph.experimental.do_not_convert
    def harmonized(example, seed):
        image = tf.ensure_shape(example["image"], (size, size, 3))
        return task.harmonize(image, seed)

    ds = tf.data.Dataset.zip(ds, seeds).map(harmonized, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _history_pools(add_weight, shape):
    """{domain: (pool of past features [size, ...], its count)}, weights of the method
    (`add_weight`: its own; so checkpoints keep them)."""

    def weight(shape, dtype, name):
        return add_weight(
            shape=shape,
            initializer="zeros",
            dtype=dtype,
            trainable=False,
            aggregation="only_first_replica",
            name=name,
        )

    return {
        domain: (
            weight(shape, "float32", f"{domain}_pool"),
            weight((), "int32", f"{domain}_pool_count"),
        )
        for domain in ("synthetic", "real")
    }


def _discriminator_loss(discriminator, accuracy, loss_tracker):
    """D's phase loss on the detached (pooled) features of the shared pass; its
    `accuracy` and loss are logged before its first update of the step."""
    updates = []  # traced once per step: the first call is the first update

    def loss(data, passed):
        syn_logits = discriminator(passed["d_syn"], training=True)
        real_logits = discriminator(passed["d_real"], training=True)
        syn_term, real_term = zoo_losses.discriminator_loss(syn_logits, real_logits)
        if not updates:
            right = [
                tf.reshape(tf.cast(syn_logits > 0, tf.float32), [-1]),
                tf.reshape(tf.cast(real_logits < 0, tf.float32), [-1]),
            ]
            accuracy.update_state(tf.concat(right, 0))
            loss_tracker.update_state(tf.reduce_mean(syn_term) + tf.reduce_mean(real_term))
        updates.append(1)
        return tf.nn.compute_average_loss(syn_term) + tf.nn.compute_average_loss(real_term)

    return loss


def _pool_step(pool, count, features, seed):
    """pix2pix's image pool: while filling, the batch is stored and used; then each
    example is, with probability 1/2, swapped for a random stored one. `pool` [size,
    ...] and `count` are the variables that hold it."""
    size = pool.shape[0]
    batch = tf.shape(features)[0]
    fill_slots = count + tf.range(batch)
    filling = fill_slots < size
    swap_seed, slot_seed = tf.unstack(tf.random.split(seed, 2))
    swap = tf.logical_and(
        tf.logical_not(filling), tf.random.stateless_uniform([batch], swap_seed) < 0.5
    )
    slots = tf.random.experimental.stateless_shuffle(tf.range(size), slot_seed)[:batch]
    stored = tf.convert_to_tensor(pool)
    shown = tf.where(swap[:, None, None, None], tf.gather(stored, slots), features)
    write = tf.logical_or(filling, swap)
    where = tf.where(filling, fill_slots, slots)
    pool.assign(
        tf.tensor_scatter_nd_update(
            stored, tf.boolean_mask(where, write)[:, None], tf.boolean_mask(features, write)
        )
    )
    count.assign(tf.minimum(size, count + batch))
    return shown


keras.saving.register_keras_serializable(package="zoo")(DomainAdversarial)
# `name`: the Keras model's, which from_config gives
gin.external_configurable(DomainAdversarial, module="zoo.methods", denylist=["name"])
