"""Ren & Lee's domain-adversarial method: Algorithm 1 step by step, the players' variables,
the real images' path to the trunk, grad-norm balancing, the history pool, replicas."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import relative_difference, tiny_trunk

from zoo.data import sources
from zoo.data.synthetic import SceneSpec
from zoo.losses import discriminator_loss, fool_loss
from zoo.methods import DomainAdversarial
from zoo.tasks import Contours, Depth, Normals

SPEC = SceneSpec(variant="----", mode="multi", resolution=32)
LR = 0.05


def _tasks():
    return [
        task(SPEC, num_examples=16, eval_examples=8, head_width=8, harmonizer="replicate_channel")
        for task in (Contours, Depth, Normals)
    ]


def _model(strategy=None, main_lr=LR, d_lr=LR, norm="batch", **kwargs):
    with (strategy or tf.distribute.get_strategy()).scope():
        kwargs.setdefault("real", sources.real_photos("train", crop=32, size=40, crops_per_image=2))
        kwargs.setdefault("adapt_at", "block1")
        model = DomainAdversarial(tiny_trunk(norm=norm), _tasks(), **kwargs)
        model.compile(
            {"main": keras.optimizers.SGD(main_lr), "discriminator": keras.optimizers.SGD(d_lr)}
        )
    return model


def _batch(model, batch_size=4):
    return next(iter(model.datasets(batch_size)))


def _values(variables):
    return [v.numpy().copy() for v in variables]


def _restore(model, values):
    for v, value in zip(model.weights, values):
        v.assign(value)


def _task_total(model, inputs, targets):
    out = model.train_network(inputs, training=True)
    weights = model.lambdas
    total = sum(
        weights[n] * tf.reduce_mean(t.loss(targets[n], out["tasks"][n]))
        for n, t in model.tasks.items()
    )
    return out, total


def test_a_step_is_algorithm_1_discriminator_first_then_trunk_and_heads():
    model = _model(adversarial_weight=0.5)
    batch = _batch(model)
    start = _values(model.weights)
    inputs, targets = dict(batch[0]), batch[1]
    real = inputs.pop("real")
    main, disc = model.variables_of("main"), model.variables_of("discriminator")
    main_start = _values(main)

    # D's phase on the trunk's features of this batch: BCE, synthetic 1 and real 0
    z_x = model.train_network(inputs, training=True)["adapted"]
    z_y = model.adapted_trunk(real, training=True)
    with tf.GradientTape() as tape:
        syn, rea = discriminator_loss(
            model.discriminator(z_x, training=True), model.discriminator(z_y, training=True)
        )
        d_loss = tf.reduce_mean(syn) + tf.reduce_mean(rea)
    for v, g in zip(disc, tape.gradient(d_loss, disc)):
        v.assign_sub(LR * g)
    expected_d = _values(disc)
    # then B and H against the updated D, labels flipped
    with tf.GradientTape() as tape:
        out, total = _task_total(model, inputs, targets)
        adversarial = tf.reduce_mean(fool_loss(model.discriminator(out["adapted"], training=True)))
        total += 0.5 * adversarial
    grads = tape.gradient(total, main)
    expected_main = [v.numpy() - LR * g.numpy() for v, g in zip(main, grads)]

    _restore(model, start)
    logs = model.train_step(batch)
    for expected, v in zip(expected_d, disc):
        np.testing.assert_allclose(v.numpy(), expected, atol=1e-5)
    for expected, v in zip(expected_main, main):
        np.testing.assert_allclose(v.numpy(), expected, atol=1e-5)
    assert float(logs["d_loss"]) == pytest.approx(float(d_loss), rel=1e-4)
    assert 0.0 <= float(logs["d_accuracy"]) <= 1.0
    assert not np.allclose(main_start[0], main[0].numpy())


@pytest.mark.parametrize("player", ["main", "discriminator"])
def test_each_phase_changes_only_its_players_variables(player):
    model = _model(main_lr=LR if player == "main" else 0.0, d_lr=LR if player != "main" else 0.0)
    other = "discriminator" if player == "main" else "main"
    mine, theirs = _values(model.variables_of(player)), _values(model.variables_of(other))
    model.train_step(_batch(model))
    assert sum(not np.allclose(a, v.numpy()) for a, v in zip(mine, model.variables_of(player))) > 2
    for a, v in zip(theirs, model.variables_of(other)):
        np.testing.assert_array_equal(a, v.numpy())


@pytest.mark.parametrize("bi_fool,joint", [(False, False), (True, False), (False, True)])
def test_real_images_reach_the_trunk_only_with_bi_fool(bi_fool, joint):
    """D frozen (lr 0): one-way, the trunk's update does not depend on the real batch;
    it does with bi-fool, and through the shared BatchNorm statistics of one joint pass."""
    trunks = []
    for seed in (0, 1):
        model = _model(d_lr=0.0, bi_fool=bi_fool, joint_statistics=joint)
        batch = _batch(model)
        real = tf.random.stateless_uniform(batch[0]["real"].shape, [seed, 7])
        model.train_step(({**batch[0], "real": real}, batch[1]))
        trunks.append(_values(model.trunk.trainable_variables))
    same = all(np.array_equal(a, b) for a, b in zip(*trunks))
    assert same != (bi_fool or joint)


def _grad_norms(model, inputs, targets):
    with tf.GradientTape(persistent=True) as tape:
        out = model.train_network(inputs, training=True)
        losses = {
            n: tf.reduce_mean(t.loss(targets[n], out["tasks"][n])) for n, t in model.tasks.items()
        }
    return np.array([float(tf.norm(tape.gradient(losses[n], out["taps"][n]))) for n in losses])


def test_grad_norm_balancing_equalises_the_tasks_gradients():
    """Nothing trains (lr 0): λ_t must be ḡ_1 / ḡ_t of the K batches, computed by hand."""
    model = _model(main_lr=0.0, d_lr=0.0, loss_balance="grad_norm", balance_steps=3)
    batches = list(model.datasets(4).take(4))
    start = _values(model.weights)
    measured = []
    for inputs, targets in batches[:3]:
        inputs = {k: v for k, v in inputs.items() if k != "real"}
        measured.append(_grad_norms(model, inputs, targets))
    mean = np.mean(measured, axis=0)
    _restore(model, start)
    assert model.lambdas == {"contours": 1.0, "depth": 1.0, "normals": 1.0}
    history = model.fit(
        tf.data.Dataset.from_generator(
            lambda: iter(batches[:3]), output_signature=model.datasets(4).element_spec
        ),
        epochs=1,
        steps_per_epoch=3,
        verbose=0,
    ).history
    lambdas = np.array(list(model.lambdas.values()))
    np.testing.assert_allclose(lambdas, mean[0] / mean, rtol=1e-3)
    assert history["lambda_depth"][-1] == pytest.approx(lambdas[1], rel=1e-5)
    # the raw norms differ several-fold; weighted, they are equal on average and close on
    # a batch that was not measured
    assert mean.max() / mean.min() > 3
    unseen = _grad_norms(
        model, {k: v for k, v in batches[3][0].items() if k != "real"}, batches[3][1]
    )
    weighted = lambdas * unseen
    assert weighted.max() / weighted.min() < 0.5 * unseen.max() / unseen.min()


def test_history_pool_fills_then_swaps_half_for_stored_features():
    model = _model(history_pool=8)
    shape = tuple(model._pools["synthetic"][0].shape[1:])

    def features(first):  # example i is filled with the value first + i
        values = np.arange(first, first + 4, dtype="float32")
        return np.broadcast_to(values[:, None, None, None], (4, *shape)).copy()

    first, second, third = features(0), features(10), features(20)
    for batch in (first, second):
        shown = model._pooled("synthetic", tf.constant(batch), tf.constant([1, 2], tf.int64))
        np.testing.assert_array_equal(shown, batch)
    pool = model._pools["synthetic"][0].numpy()
    np.testing.assert_array_equal(pool, np.concatenate([first, second]))
    swaps = 0
    for step in range(3):
        before = model._pools["synthetic"][0].numpy()[:, 0, 0, 0]
        seed = tf.constant([3, step], tf.int64)
        shown = model._pooled("synthetic", tf.constant(third + 10 * step), seed).numpy()
        after = model._pools["synthetic"][0].numpy()[:, 0, 0, 0]
        for i in range(4):
            new = third[i, 0, 0, 0] + 10 * step
            if shown[i, 0, 0, 0] != new:  # a stored feature was shown; the new one stored
                swaps += 1
                assert shown[i, 0, 0, 0] in before and new in after
        assert int(model._pools["synthetic"][1].numpy()) == 8
    assert 0 < swaps < 12  # each example swapped with probability 1/2


def test_mirrored_strategy_equals_one_device(mirrored):
    """Two steps (the second with grad_norm's λ from the first) and precise BatchNorm on
    two replicas give one device's updates and statistics, to float32 rounding amplified by
    two adversarial steps: measured, the updates differ by 0.7 % of their norm and the
    statistics by 0.4 %; with per-replica BatchNorm (norm="batch") instead of synchronised,
    by 52 % and 42 %. (Elementwise tolerances fail on some CPUs: biases before a
    BatchNorm have a zero gradient up to rounding, and their "updates" are noise.)"""
    reference = _model(norm="sync_batch")
    batch = _batch(reference, batch_size=8)
    data = tf.data.Dataset.from_tensors(batch).repeat(2)
    runs = {}
    for name, strategy in (("one", tf.distribute.get_strategy()), ("mirrored", mirrored)):
        model = _model(strategy, norm="sync_batch", loss_balance="grad_norm", balance_steps=1)
        start = _values(model.trainable_variables)
        history = model.fit(data, epochs=1, verbose=0).history
        update = [v.numpy() - s for v, s in zip(model.trainable_variables, start)]
        with strategy.scope():  # as in a run: the whole global batch in one pass
            model.precise_batch_norm([batch], progress=False)
        statistics = [
            v.numpy()
            for v in model.non_trainable_variables
            if "moving_mean" in v.path or "moving_variance" in v.path
        ]
        runs[name] = (history, update, model.lambdas, statistics)
    assert mirrored.num_replicas_in_sync == 2
    assert len(runs["one"][3]) > 10

    assert relative_difference(runs["one"][1], runs["mirrored"][1]) < 0.02
    for a, b in zip(runs["one"][3], runs["mirrored"][3]):
        assert relative_difference([a], [b]) < 0.02
    for key in ("d_loss", "adversarial_loss", "depth_loss", "loss"):
        assert runs["mirrored"][0][key][0] == pytest.approx(runs["one"][0][key][0], rel=1e-3), key
    for task, value in runs["one"][2].items():
        assert runs["mirrored"][2][task] == pytest.approx(value, rel=1e-3)


def test_configuration_round_trip_and_errors():
    model = _model(
        bi_fool=True,
        d_steps=2,
        loss_balance="grad_norm",
        adapt_at="conv4",
        discriminator_widths=(4, 4, 4),
        loss_weights={"depth": 2.0},
    )
    assert model.adapt_endpoint == "block2"  # conv4's analogue on a ResNet
    assert model.discriminator.input.shape == (None, 4, 4, 16)  # block2 of 32 px
    convs = [layer.filters for layer in model.discriminator.layers if hasattr(layer, "filters")]
    assert convs == [4, 4, 4, 1]
    assert model.lambdas == {"contours": 1.0, "depth": 2.0, "normals": 1.0}
    model.train_step(_batch(model))
    assert int(model.player_optimizers["discriminator"].iterations) == 2  # d_steps
    assert int(model.player_optimizers["main"].iterations) == 1
    rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert rebuilt.get_config() == model.get_config()
    assert rebuilt.real.identity() == model.real.identity()
    default = DomainAdversarial(tiny_trunk(), _tasks(), adapt_at="block1").real
    assert (default.crop, default.size, default.names) == (32, 64, sources.ADAPTATION_PHOTOS)
    with pytest.raises(ValueError, match="loss_balance"):
        _model(loss_balance="equal")
    with pytest.raises(ValueError, match="nor an AlexNet layer"):
        _model(adapt_at="fc9")
    with pytest.raises(ValueError, match="are 64x64 but the method takes 32 px"):
        _model(real=sources.real_photos("train", crop=64, crops_per_image=1))


@pytest.mark.parametrize("joint", [False, True])
def test_precise_batch_norm_measures_the_passes_of_a_training_step(joint):
    model = _model(joint_statistics=joint)
    batch = _batch(model)
    norms = [
        ly for ly in model.adapted_trunk.layers if isinstance(ly, keras.layers.BatchNormalization)
    ]
    first = norms[0]  # before adapt_at: it normalizes both domains
    probe = keras.Model(model.adapted_trunk.input, first.input)
    synthetic = probe(batch[0][model.group]).numpy()
    real = probe(batch[0]["real"]).numpy()
    model.precise_batch_norm([batch], progress=False)
    if joint:  # one pass over both batches: their pooled statistics
        pooled = np.concatenate([synthetic, real])
        mean, variance = pooled.mean((0, 1, 2)), pooled.var((0, 1, 2))
    else:  # two passes, two samples
        mean = (synthetic.mean((0, 1, 2)) + real.mean((0, 1, 2))) / 2
        variance = (synthetic.var((0, 1, 2)) + real.var((0, 1, 2))) / 2
    np.testing.assert_allclose(first.moving_mean.numpy(), mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first.moving_variance.numpy(), variance, rtol=1e-3, atol=1e-5)
    # the discriminator is not called: its statistics stay at their initial values
    for layer in model.discriminator._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            np.testing.assert_array_equal(layer.moving_mean.numpy(), 0.0)
