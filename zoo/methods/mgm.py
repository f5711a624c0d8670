"""MGM 2022: multi-task learning with a conditional generative model (sec. 3, Algorithm 1,
App. A-B; the authors' released code where the paper leaves a choice open).

The networks:

* **M**: the shared trunk E and a head per pixel task (`SharedTrunk`'s graph: e.g.
  Depth, Normals and SemanticSegmentation with `head="taskonomy"`, on one stream of
  labelled scenes);
* **R** (`zoo.trunks.refinement_network`): the scene category from M's *predictions*;
* **Emb** (`zoo.layers.gan_networks.latent_embedding`): z = Emb(E(x)) + N(0, I);
* **G** and **D**: a conditional SAGAN (or DCGAN) generator and projection
  discriminator on the scene category c;
* a SimCLR projection head on E (global average pool -> Dense, the code's one layer).

Each training step on a real batch (x, y, c), in the code's order (stage 3, "joint"):

1. the task losses of M(x) -> player "M" (E, heads, projection head);
2. CE(c, R(M(x))), recomputed after step 1 -> "R" and "E" (E's own optimizer);
3. NT-Xent on two views of x -> "M";
4. `gan_steps` times: the hinge loss of D on real images and detached G(z, c) with
   instance noise -> "D", then G's hinge loss -> "G", "E" and "Emb";
5. the weak phase: x̃ = G(z, c), detached (`synthetic_ratio` of them per real image):
   CE(c, R(M(x̃))) -> "E" only (R frozen: not stepped), and NT-Xent on two views of x̃
   -> "M".

Generated images never enter a pixel-level loss. Stage 1 ("tasks") is step 1 alone; stage
2 ("gan") is step 4 with M frozen (G's loss steps G and Emb only; with
`warmup_latent="noise"` z is noise alone, as in the code's GAN warm-up). The stage of an
epoch follows `stage_epochs` (`set_epoch`, called by `method_callbacks()` at each epoch's
start), so a resumed run takes up the stage of its epoch.

Players and their variables: "M" (E, the task heads, the projection head), "E" (E again:
the code's second Adam on the encoder), "R", "Emb", "G", "D". M and E share E's
variables (`players_share_variables`), as the code's two optimizers do.

Variants (Tables 2-4, 9, Fig. 5): `generator=None` (MGM/G: no G, D, Emb, no weak
phase); `weak_real=True` with `generator=None` (MGMr: the weak phase reads the real
training scenes outside the tasks' `labelled_fraction`, with their scene labels only);
`joint_generator=False` (MGM/j: G and D trained in stage 2, then frozen);
`self_supervision=None` (MGM/self) or "reconstruction" (MGM_recon: MSE of a Taskonomy
decoder's image from E's map, instead of NT-Xent); `refinement=None` (MGM/refine),
"end_to_end" (PEoE: CE -> R and M on every image) or "separate" (LSeT: CE -> R alone on
real images, E alone on weak ones) instead of "em" (EML, the method's);
`synthetic_ratio` (Fig. 5's weakly labelled share over the labelled one).

Images: the tasks read the identity harmonizer's [0, 1] images; D and G work in (-1, 1)
(x · 2 - 1; G's tanh output (x̃ + 1) / 2 for E), as the code scales its inputs.

Batch structure: SharedTrunk's `(inputs, targets)` with `targets["scene"]` [B] int32,
the examples' scene entry (`datasets()` adds it). With `weak_real`, the
training batches' targets also hold `weak`: {"image": [B, S, S, 3], "scene": [B]}. `fit`
reports, of the phases its stage runs, the task losses, `scene_loss`, `simclr_loss` (or
`reconstruction_loss`), `d_loss`, `g_loss`, `d_accuracy` (real scored > 0, generated < 0),
and the weak phase's `weak_scene_loss` and `weak_simclr_loss` (`weak_reconstruction_loss`);
`loss` is the task total (stage 2: D's plus G's loss).
"""

import math
from collections.abc import Callable, Sequence

import gin
import keras
import tensorflow as tf

from zoo import checks, metrics
from zoo import losses as zoo_losses
from zoo.data import augment
from zoo.data.sources import LabelledFraction
from zoo.data.synthetic import SCENE_NAMES
from zoo.errors import UserError
from zoo.layers import gan_networks
from zoo.methods import graph, groups
from zoo.methods.shared_trunk import SharedTrunk, graph_config
from zoo.tasks.base import Task, pipeline, taskonomy_decoder
from zoo.tasks.classification import class_count
from zoo.trunks.resnet import refinement_network

GENERATORS = {
    "sagan": (gan_networks.sagan_generator, gan_networks.sagan_discriminator),
    "dcgan": (gan_networks.dcgan_generator, gan_networks.dcgan_discriminator),
}
# the constructor's own arguments, stored under their names (get_config)
OWN_ARGUMENTS = (
    "scene_classes",
    "generator",
    "generator_width",
    "attention_size",
    "z_dim",
    "weak_real",
    "synthetic_ratio",
    "projection",
    "temperature",
    "gan_steps",
    "instance_noise",
    "stage_epochs",
    "warmup_latent",
    "joint_generator",
    "self_supervision",
    "refinement",
    "refinement_widths",
    "refinement_units",
    "refinement_stem",
    "relu_logits",
)
SELF_SUPERVISION = ("simclr", "reconstruction", None)
# refinement -> (players of CE(c, R(M(x))) on real images, on weak ones)
REFINEMENT = {
    "em": (("R", "E"), ("E",)),
    "end_to_end": (("R", "M"), ("R", "M")),
    "separate": (("R",), ("E",)),
    None: ((), ()),
}
LOGS = (
    "scene_loss",
    "simclr_loss",
    "reconstruction_loss",
    "d_loss",
    "g_loss",
    "d_accuracy",
    "weak_scene_loss",
    "weak_simclr_loss",
    "weak_reconstruction_loss",
)


class MGM(SharedTrunk):
    """Multi-task learning with a conditional generator (module docstring).

    Args:
        trunk: keras.Model or callable. The encoder E (as SharedTrunk).
        tasks: list of pixel tasks reading one stream of scenes with a "scene" entry.
        input_size: int or None. As SharedTrunk; 4·2^k with a generator.
        scene_classes: int or None. Scene categories. Defaults to None: as many as the
            source names, else the 7 of the synthetic scenes.
        generator: "sagan", "dcgan" or None (MGM/G). Defaults to "sagan".
        generator_width: int. G's last and D's first width (g_conv_dim). Defaults to 64.
        attention_size: int or None. SAGAN's self-attention resolution. Defaults to 32.
        z_dim: int. Defaults to 128.
        weak_real: bool. MGMr (needs generator=None). Defaults to False.
        synthetic_ratio: float > 0. Generated images per real one. Defaults to 1.0.
        projection: int. The SimCLR projection's size. Defaults to 64 (the code's).
        temperature: float. NT-Xent's τ. Defaults to 0.5.
        gan_steps: int. D and G updates per step. Defaults to 2 (the code's).
        instance_noise: float. σ of the noise added to D's inputs. Defaults to 0.01.
        stage_epochs: (int, int). Epochs of stage 1 (tasks alone) and stage 2 (G and D,
            M frozen); then joint training. Defaults to (0, 0): joint from the start
            (the paper gives no stage lengths; gin_configs/mgm22 set them).
        warmup_latent: "embedding" or "noise". z in stage 2. Defaults to "embedding".
        joint_generator: bool. G and D keep training in stage 3. Defaults to True.
        self_supervision: "simclr", "reconstruction" or None. Defaults to "simclr".
        refinement: "em", "end_to_end", "separate" or None. Defaults to "em".
        refinement_widths, refinement_units: R's stages. Defaults to the code's.
        refinement_stem: int. R's stem width. Defaults to 64.
        relu_logits: bool. R's rectified logits (the code's). Defaults to False.
    """

    players_share_variables = True  # "M" and "E" both update the encoder, as in the code

    def __init__(
        self,
        trunk: keras.Model | Callable = gin.REQUIRED,
        tasks: Sequence[Task] = gin.REQUIRED,
        input_size: int | None = None,
        scene_classes: int | None = None,
        generator: str | None = "sagan",
        generator_width: int = 64,
        attention_size: int | None = 32,
        z_dim: int = 128,
        weak_real: bool = False,
        synthetic_ratio: float = 1.0,
        projection: int = 64,
        temperature: float = 0.5,
        gan_steps: int = 2,
        instance_noise: float = 0.01,
        stage_epochs: Sequence[int] = (0, 0),
        warmup_latent: str = "embedding",
        joint_generator: bool = True,
        self_supervision: str | None = "simclr",
        refinement: str | None = "em",
        refinement_widths: Sequence[int] = (48, 96, 192),
        refinement_units: Sequence[int] = (3, 4, 3),
        refinement_stem: int = 64,
        relu_logits: bool = False,
        name: str | None = None,
    ):
        _check_arguments({k: v for k, v in locals().items() if k in OWN_ARGUMENTS})
        stage_epochs = _stage_epochs(stage_epochs)
        super().__init__(trunk, tasks, input_size=input_size, name=name)
        self.group, first = _one_stream(self)
        self.scene_classes = class_count(
            first, "scene", scene_classes, len(SCENE_NAMES), "scene_classes", "MGM"
        )
        self.generator, self.generator_width = generator, generator_width
        self.attention_size, self.z_dim, self.projection = attention_size, z_dim, projection
        self.weak_real, self.synthetic_ratio = bool(weak_real), float(synthetic_ratio)
        self.temperature, self.gan_steps = float(temperature), gan_steps
        self.instance_noise, self.stage_epochs = float(instance_noise), stage_epochs
        self.warmup_latent, self.joint_generator = warmup_latent, bool(joint_generator)
        self.self_supervision, self.refinement = self_supervision, refinement
        self.refinement_widths = tuple(refinement_widths)
        self.refinement_units = tuple(refinement_units)
        self.refinement_stem, self.relu_logits = refinement_stem, bool(relu_logits)
        endpoint = self.endpoints[self.groups[self.group][0]]
        self._feature_shape = tuple(self._trunk_features.value[self.group][endpoint].shape[1:])
        self.networks = _networks(self, self._feature_shape)
        self.views = augment.mgm_views()
        self._step = self.add_weight(
            shape=(),
            dtype="int64",
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",
            name="mgm_step",
        )
        self.trackers = {n: keras.metrics.Mean(name=n) for n in LOGS}
        self.stage = self.stage_of(0)
        self.built = True

    # -- stages --------------------------------------------------------------------

    def stage_of(self, epoch: int) -> str:
        """The stage ("tasks", "gan" or "joint") of 0-based `epoch`."""
        tasks_alone, gan = self.stage_epochs
        if epoch < tasks_alone:
            return "tasks"
        if epoch < tasks_alone + gan and self.generator is not None:
            return "gan"
        return "joint"

    def set_epoch(self, epoch: int) -> bool:
        """Sets the stage of `epoch`; True when it changed (the step must be traced again)."""
        stage = self.stage_of(epoch)
        changed, self.stage = stage != self.stage, stage
        return changed

    @property
    def step_variant(self):
        """The stage: the multi-worker loop traces the step anew when it changes."""
        return self.stage

    def method_callbacks(self) -> list:
        """The stage schedule (each epoch's stage; a new train function when it changes)
        and, with a generator, the trunk Fréchet distance logged each epoch of stages 2-3
        (`trunk_frechet_distance`)."""
        return [_StageSchedule()] + ([_FrechetMonitor()] if self.generator is not None else [])

    def rolled_back(self, attempt):
        """A retry after a blow-up draws noise that no step drew (the counter jumps)."""
        self._step.assign_add(attempt << 40)

    def generate(self, images, scenes, seed=(0, 0)):
        """G's images [B, S, S, 3] in [0, 1] for real `images` [B, S, S, 3] in [0, 1] (E's
        code) and their `scenes` [B], as the joint stage draws them (inference mode)."""
        return _generated(self, images, scenes, seed)

    # -- players -------------------------------------------------------------------

    @property
    def players(self):
        gan = self.generator is not None
        names = [
            "M",
            *(["E"] if self.refinement or gan else []),
            *(["R"] if self.refinement else []),
        ]
        return tuple(names + (["Emb", "G", "D"] if gan else []))

    def variables_of(self, player):
        if player == "M":
            extra = self.networks.get("projection") or self.networks.get("reconstruction")
            own = self.train_network.trainable_variables
            return own + (extra.trainable_variables if extra else [])
        if player == "E":
            return self.trunk.trainable_variables
        parts = {"R": "refinement", "Emb": "embedding", "G": "generator", "D": "discriminator"}
        if player in self.players and player in parts:
            return self.networks[parts[player]].trainable_variables
        raise UserError(f"unknown player {player!r}; players: {list(self.players)}")

    # -- data ----------------------------------------------------------------------

    def _group_stream(self, name, split, batch_size):
        return _stream(self, name, split, batch_size)

    def _check_batch(self, data):
        if not (isinstance(data, (tuple, list)) and len(data) == 2 and "scene" in data[1]):
            raise UserError("MGM expects (inputs, targets) with targets['scene'] (see datasets()).")
        if self.weak_real and "weak" not in data[1]:
            raise UserError("MGMr (weak_real) expects targets['weak'] (see datasets()).")
        super()._check_batch((data[0], _task_targets(data[1])))

    # -- training ------------------------------------------------------------------

    @property
    def metrics(self):
        return [*super().metrics, *self.trackers.values()]

    def train_step(self, data):
        self._check_batch(data)
        x, targets, scenes = data[0], _task_targets(data[1]), data[1]["scene"]
        seeds = _seeds(self._step, self.gan_steps + 3)
        if self.stage != "gan":
            self.task_phase(x, targets)
        if self.stage == "joint":
            if self.refinement:
                self.refinement_phase(x[self.group], scenes)
            if self.self_supervision:
                self.self_supervised_phase(x[self.group], seeds[0])
        gan = self.generator is not None
        if gan and (self.stage == "gan" or (self.stage == "joint" and self.joint_generator)):
            for k in range(self.gan_steps):
                gan_losses = _gan_phase(self, x[self.group], scenes, seeds[1 + k])
            if self.stage == "gan":  # `loss` of stage 2: the GAN's (its last D and G steps)
                self.task_losses.track_total(tf.add_n(gan_losses))
        if self.stage == "joint" and (gan or self.weak_real):
            weak = data[1]["weak"] if self.weak_real else _synthetic(self, x, scenes, seeds[-1])
            if self.refinement:
                self.refinement_phase(weak["image"], weak["scene"], weak=True)
            if self.self_supervision:
                self.self_supervised_phase(weak["image"], seeds[-2], weak=True)
        self._step.assign_add(1)
        self.after_step()
        return {k: v for k, v in self._logs().items() if k in _logged(self)}

    def task_phase(self, x, targets):
        with tf.GradientTape() as tape:
            out = self.network(x, training=True)
            losses = self.task_losses(x, targets, out)
            total = self.balancer.total(losses) + self._regularization()
        self.apply("M", tape, total)
        self.task_losses.track_total(total)

    def refinement_phase(self, images, scenes, weak=False):
        """CE(c, R(M(images))) -> the players `refinement` gives real or `weak` images
        (`REFINEMENT`; R frozen when not among them)."""
        players = REFINEMENT[self.refinement][int(weak)]
        with tf.GradientTape(persistent=True) as tape:
            predictions = self.network({self.group: images}, training=True)
            logits = self.networks["refinement"](predictions, training="R" in players)
            per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(scenes, logits)
            loss = tf.nn.compute_average_loss(per_example)
        for player in players:
            self.apply(player, tape, loss)
        del tape
        self.trackers["weak_scene_loss" if weak else "scene_loss"].update_state(
            tf.reduce_mean(per_example)
        )

    def self_supervised_phase(self, images, seed, weak=False):
        """NT-Xent of two views of each image (or the MSE of its reconstruction) -> "M"
        (E and the projection head or the reconstruction decoder)."""
        with tf.GradientTape() as tape:
            per_example = _self_supervised_loss(self, images, seed)
            loss = tf.nn.compute_average_loss(per_example)
        self.apply("M", tape, loss)
        log = f"{'weak_' if weak else ''}{self.self_supervision}_loss"
        self.trackers[log].update_state(tf.reduce_mean(per_example))

    def test_step(self, data):
        self._check_batch(data)
        return super().test_step((data[0], _task_targets(data[1])))

    # -- configuration -------------------------------------------------------------

    def get_config(self):
        config = {**super().get_config(), **graph_config(self)}
        for key in ("loss_weights", "loss_balance", "balance_steps"):
            config.pop(key)
        config.update({k: _plain(getattr(self, k)) for k in OWN_ARGUMENTS})
        return config


class _StageSchedule(keras.callbacks.Callback):
    """At each epoch's start: the method's stage of that epoch, and Keras' train function
    traced again when the stage changed (the phases a step runs are Python choices)."""

    def on_epoch_begin(self, epoch, logs=None):
        if self.model.set_epoch(epoch):
            self.model.make_train_function(force=True)


class _FrechetMonitor(keras.callbacks.Callback):
    """`trunk_frechet_distance` in each epoch's logs (TensorBoard, progress.json) once G
    trains: the Fréchet distance between E's pooled features of up to 64 held-out
    scenes and of G's images for them (`zoo.metrics.frechet_distance`; on the zoo's own
    trunk, not Inception's, so not an FID)."""

    def on_epoch_end(self, epoch, logs=None):
        method = self.model
        if logs is None or method.stage == "tasks":
            return
        inputs, targets = next(iter(method.datasets(64, "eval")))
        images = inputs[method.group]
        fake = method.generate(images, targets["scene"], seed=(epoch, 1))
        endpoint = method.endpoints[method.groups[method.group][0]]
        pooled = [
            tf.reduce_mean(method.trunk(x, training=False)[endpoint], axis=(1, 2)).numpy()
            for x in (images, fake)
        ]
        logs["trunk_frechet_distance"] = metrics.frechet_distance(*pooled)


def _logged(method) -> set:
    """The names `fit` logs in the method's stage: those of the phases it runs."""
    joint, gan = method.stage == "joint", method.generator is not None
    names = {"loss"}
    if method.stage != "gan":
        names |= {m.name for m in method.task_losses.metrics}
    prefixes = ("", "weak_") if gan or method.weak_real else ("",)
    if joint and method.refinement:
        names |= {f"{p}scene_loss" for p in prefixes}
    if joint and method.self_supervision:
        names |= {f"{p}{method.self_supervision}_loss" for p in prefixes}
    if gan and (method.stage == "gan" or (joint and method.joint_generator)):
        names |= {"d_loss", "g_loss", "d_accuracy"}
    return names


def _check_arguments(arguments):
    """Refuses arguments of MGM that are not allowed (named in the message)."""
    who, given = "MGM", arguments
    if given["generator"] is not None:
        checks.one_of(given["generator"], tuple(GENERATORS), "generator", who)
    checks.one_of(given["warmup_latent"], ("embedding", "noise"), "warmup_latent", who)
    checks.one_of(given["self_supervision"], SELF_SUPERVISION, "self_supervision", who)
    checks.one_of(given["refinement"], tuple(REFINEMENT), "refinement", who)
    for name in ("gan_steps", "z_dim", "projection"):
        checks.int_at_least(given[name], 1, name, who)
    checks.number_in(given["temperature"], "temperature", 0, who=who, low_open=True)
    checks.number_in(given["synthetic_ratio"], "synthetic_ratio", 0, who=who, low_open=True)
    checks.number_in(given["instance_noise"], "instance_noise", 0, who=who)
    if given["weak_real"] and given["generator"] is not None:
        raise UserError(
            "MGM: weak_real (MGMr) reads real scenes in place of generated ones; set "
            f"generator=None (it is {given['generator']!r})."
        )
    if given["weak_real"] and not (given["refinement"] or given["self_supervision"]):
        raise UserError("MGM: weak_real needs refinement or self_supervision to read its images.")


def _one_stream(method):
    """(the input group, its first task) of a method whose tasks read one stream of RGB
    scenes; refuses others."""
    if len(method.groups) != 1:
        raise UserError(
            "MGM reads one stream of labelled scenes: its tasks must read the same "
            f"examples (same source, harmonizer and seed). Their inputs: {method.groups}"
        )
    group = next(iter(method.groups))
    first = method.tasks[method.groups[group][0]]
    if first.harmonizer != "identity":
        raise UserError(
            f"MGM: the tasks' harmonizer must be 'identity' (G and D work on the RGB "
            f"image itself); {first.name}'s is {first.harmonizer!r}."
        )
    return group, first


def _task_targets(targets):
    """The targets of the pixel tasks (without the scene and the weak images)."""
    return {k: v for k, v in targets.items() if k not in ("scene", "weak")}


def _stage_epochs(value):
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(e, int) and e >= 0 for e in value):
        raise UserError(
            f"MGM: stage_epochs must be two ints >= 0 (epochs of the tasks-alone and the GAN "
            f"stages). Received: {value!r}"
        )
    return value


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _networks(method, feature_shape) -> dict:
    """R, Emb, G, D and the projection head, as the method's switches ask
    (`feature_shape`: E's map that the tasks read)."""
    size = graph.image_shape(method.input_size)[0]
    for name in ("generator_width", "refinement_stem"):
        checks.int_at_least(getattr(method, name), 1, name, "MGM")
    built = {}
    inputs = keras.Input(feature_shape)
    if method.self_supervision == "simclr":
        pooled = keras.layers.GlobalAveragePooling2D()(inputs)
        built["projection"] = keras.Model(
            inputs, keras.layers.Dense(method.projection)(pooled), name="projection"
        )
    elif method.self_supervision == "reconstruction":
        image = taskonomy_decoder(inputs, size, 3, "reconstruction")
        built["reconstruction"] = keras.Model(inputs, image, name="reconstruction")
    if method.refinement:
        shapes = {n: tuple(o.shape[1:]) for n, o in method.network.output.items()}
        built["refinement"] = refinement_network(
            shapes,
            method.scene_classes,
            widths=method.refinement_widths,
            units=method.refinement_units,
            stem_width=method.refinement_stem,
            relu_logits=method.relu_logits,
            norm="sync_batch",  # the global batch's statistics on several replicas
        )
    if method.generator is not None:
        make_g, make_d = GENERATORS[method.generator]
        extra = {"attention_size": method.attention_size} if method.generator == "sagan" else {}
        built["embedding"] = gan_networks.latent_embedding(feature_shape, method.z_dim)
        built["generator"] = make_g(
            method.scene_classes,
            size,
            z_dim=method.z_dim,
            base_width=method.generator_width,
            **extra,
        )
        built["discriminator"] = make_d(
            method.scene_classes, size, base_width=method.generator_width, **extra
        )
    return built


def _generated(method, images, scenes, seed):
    """`MGM.generate`."""
    stage, method.stage = method.stage, "joint"
    try:
        z = _latent(method, tf.convert_to_tensor(images), tf.constant(seed, tf.int64), False)
    finally:
        method.stage = stage
    fake = method.networks["generator"]([z, tf.convert_to_tensor(scenes)], training=False)
    return (fake + 1.0) / 2.0


def _self_supervised_loss(method, images, seed):
    """Per example: NT-Xent of the projections of two views of each image, or the mean
    squared error of its reconstruction from E's map (E in training mode)."""
    endpoint = method.endpoints[method.groups[method.group][0]]
    if method.self_supervision == "reconstruction":
        features = method.trunk(images, training=True)[endpoint]
        rebuilt = method.networks["reconstruction"](features, training=True)
        return tf.reduce_mean(tf.square(rebuilt - images), axis=(1, 2, 3))
    projected = [
        method.networks["projection"](method.trunk(v, training=True)[endpoint], training=True)
        for v in _two_views(method.views, images, seed)
    ]
    return zoo_losses.nt_xent(*projected, temperature=method.temperature)


def _latent(method, images, seed, training=True):
    """z = N(0, I) + Emb(E(x)) (noise alone in a noise warm-up); E in inference mode
    outside the joint stage (stage 2 freezes M, its statistics too)."""
    noise = tf.random.stateless_normal([tf.shape(images)[0], method.z_dim], seed)
    if method.stage == "gan" and method.warmup_latent == "noise":
        return noise
    endpoint = method.endpoints[method.groups[method.group][0]]
    features = method.trunk(images, training=training and method.stage == "joint")[endpoint]
    return noise + method.networks["embedding"](features, training=training)


def _synthetic(method, x, scenes, seed):
    """The weak phase's generated batch: {"image": detached G(z, c) in [0, 1], "scene": c},
    `synthetic_ratio` images per real one (the real batch repeated, each copy with its
    own noise, then cut to round(ratio · B))."""
    images = x[method.group]
    if method.synthetic_ratio != 1.0:
        count = tf.shape(images)[0]
        wanted = tf.round(method.synthetic_ratio * tf.cast(count, tf.float32))
        kept = tf.maximum(1, tf.cast(wanted, tf.int32))
        copies = math.ceil(method.synthetic_ratio)
        images = tf.tile(images, [copies, 1, 1, 1])[:kept]
        scenes = tf.tile(scenes, [copies])[:kept]
    fake = tf.stop_gradient(_generate(method, images, scenes, seed))
    return {"image": (fake + 1.0) / 2.0, "scene": scenes}


def _generate(method, images, scenes, seed):
    """G(z, c) in (-1, 1) for the real `images` [0, 1] and their scenes."""
    return method.networks["generator"]([_latent(method, images, seed), scenes], training=True)


def _scores(method, images, scenes, seed):
    """D's scores of (-1, 1) `images` with instance noise."""
    noisy = images + method.instance_noise * tf.random.stateless_normal(tf.shape(images), seed)
    return method.networks["discriminator"]([noisy, scenes], training=True)


def _gan_phase(method, images, scenes, seeds):
    """One D step on real and detached generated images, then one G step (G; Emb unless
    z is noise alone; E in the joint stage)."""
    real = images * 2.0 - 1.0
    z_seed, d_seed, g_seed, fake_seed, noise_seed = tf.unstack(tf.random.split(seeds, 5))
    fake = tf.stop_gradient(_generate(method, images, scenes, z_seed))
    with tf.GradientTape() as tape:
        real_scores = _scores(method, real, scenes, d_seed)
        fake_scores = _scores(method, fake, scenes, fake_seed)
        real_term, fake_term = zoo_losses.hinge_discriminator_loss(real_scores, fake_scores)
        d_loss = tf.nn.compute_average_loss(real_term) + tf.nn.compute_average_loss(fake_term)
    right = [tf.cast(real_scores > 0, tf.float32), tf.cast(fake_scores < 0, tf.float32)]
    method.trackers["d_accuracy"].update_state(tf.concat(right, 0))
    method.apply("D", tape, d_loss)
    method.trackers["d_loss"].update_state(tf.reduce_mean(real_term) + tf.reduce_mean(fake_term))
    players = ["G"]
    if not (method.stage == "gan" and method.warmup_latent == "noise"):
        players.append("Emb")
    if method.stage == "joint":
        players.append("E")
    with tf.GradientTape(persistent=True) as tape:
        fake = _generate(method, images, scenes, g_seed)
        per_example = zoo_losses.hinge_generator_loss(_scores(method, fake, scenes, noise_seed))
        g_loss = tf.nn.compute_average_loss(per_example)
    for player in players:
        method.apply(player, tape, g_loss)
    del tape
    method.trackers["g_loss"].update_state(tf.reduce_mean(per_example))
    return d_loss, g_loss


def _stream(method, name, split, batch_size):
    """The group's batches with each example's scene category among the targets (and,
    for MGMr's training, the weakly labelled real scenes under "weak")."""
    stream = groups.group_stream(
        method.network,
        method.tasks,
        method.groups[name],
        name,
        split,
        batch_size,
        method.input_size,
        labels=("scene",),
    )
    if split != "train" or not method.weak_real:
        return stream
    weak = _weak_stream(method.tasks[method.groups[name][0]], batch_size)
    return tf.data.Dataset.zip(stream, weak).map(lambda b, w: (b[0], {**b[1], "weak": w}))


def _weak_stream(task, batch_size):
    """MGMr's weakly labelled real scenes: the training examples outside the task's
    labelled fraction, as the task reads its own, with their scene category only."""
    labelled = task.data_source("train")
    if not isinstance(labelled, LabelledFraction):
        raise UserError(
            f"MGM: weak_real (MGMr) reads the training scenes outside the tasks' labelled "
            f"fraction; {task.name}'s labelled_fraction is {task.labelled_fraction} (set "
            "it below 1)."
        )
    rest = LabelledFraction(labelled.source, labelled.fraction, labelled.seed, complement=True)
    stream = pipeline([task], "train", batch_size, labels=("scene",), source=rest)
    return stream.map(lambda x, y: {"image": x, "scene": y["scene"]})


def _seeds(step, count):
    """`count` stateless seeds [2] of a step, from the step counter (a resumed run draws
    the same) and the replica (each replica of a step draws its own noise)."""
    replica = tf.distribute.get_replica_context()
    index = 0 if replica is None else replica.replica_id_in_sync_group
    base = tf.stack([tf.convert_to_tensor(step), tf.constant(2022, tf.int64)])
    base = tf.random.experimental.stateless_fold_in(base, tf.cast(index, tf.int64))
    return tf.unstack(tf.random.split(base, count))


def _two_views(views, images, seed):
    """Two augmented views of each image of the batch (`views`: a zoo.data.augment.Views)."""
    count = tf.shape(images)[0]
    seeds = tf.random.split(seed, count)
    pairs = tf.map_fn(
        lambda a: views(a[0], a[1]),
        (images, seeds),
        fn_output_signature=tf.TensorSpec([2, *images.shape[1:]], images.dtype),
    )
    return pairs[:, 0], pairs[:, 1]


keras.saving.register_keras_serializable(package="zoo")(MGM)
gin.external_configurable(MGM, module="zoo.methods", denylist=["name"])
