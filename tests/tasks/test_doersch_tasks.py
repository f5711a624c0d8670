"""Doersch & Zisserman's pretext tasks: geometry, quantizer, losses, siamese wiring, lasso."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.data.harmonize import rgb_to_lab
from zoo.data.synthetic import SceneSpec
from zoo.methods import MultiTask
from zoo.tasks import Colorization, Exemplar, MotionSegmentation, RelativePosition
from zoo.tasks.colorization import annealed_mean, gamut_bins, rebalancing_weights, soft_encode
from zoo.tasks.exemplar import triplet_loss
from zoo.tasks.relative_position import NEIGHBOURS, grid_origin, patch_pair
from zoo.trunks import resnet

SINGLE = SceneSpec(variant="TCVL", mode="single", resolution=64)
MOTION = SceneSpec(variant="TCVL", mode="motion", resolution=64)
SMALL = dict(num_examples=32, eval_examples=16, endpoint="block3")


def _small_tasks(harmonized=False):
    rp_harmonizer = "lab_l3" if harmonized else "drop_color"
    return [
        RelativePosition(
            SINGLE,
            image_size=64,
            patch_size=16,
            gap=4,
            jitter=2,
            head_widths=(32, 16),
            head_bottleneck=8,
            fc_width=64,
            fc_bottleneck=16,
            harmonizer=rp_harmonizer,
            **SMALL,
        ),
        Colorization(SINGLE, head_width=32, **SMALL),
        Exemplar(
            SINGLE,
            image_size=64,
            patch_size=32,
            head_widths=(32, 16),
            head_bottleneck=8,
            harmonizer="lab_l3" if harmonized else "identity",
            **SMALL,
        ),
        MotionSegmentation(
            MOTION, head_width=32, harmonizer="lab_l3" if harmonized else "identity", **SMALL
        ),
    ]


def _trunk():
    """A seeded ResNet-18 to block 3 at stride 8: two units per stage for the lasso to
    weigh, as a ResNet-26 has, on two thirds of its layers."""
    keras.utils.set_random_seed(0)
    return resnet(
        18,
        width_multiplier=0.125,
        output_stride=8,
        stop_at="block3",
        input_shape=(None, None, 3),
    )


def test_patch_pair_labels_match_the_grid():
    size, p, gap, jitter = 64, 16, 4, 0
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    image = tf.constant(np.stack([rows, cols, np.zeros_like(rows)], -1), tf.float32)
    origin = grid_origin(size, p, gap, jitter)
    assert origin == (64 - 56) // 2
    for label, (r, c) in enumerate(NEIGHBOURS):
        pair = patch_pair(image, tf.constant(label), tf.constant([1, 2]), p, gap, jitter).numpy()
        # the first patch is the centre cell, the second the cell the label names
        assert pair[0, 0, 0, 0] == origin + (p + gap) and pair[0, 0, 0, 1] == origin + (p + gap)
        assert pair[1, 0, 0, 0] == origin + r * (p + gap)
        assert pair[1, 0, 0, 1] == origin + c * (p + gap)
        dr = pair[1, 0, 0, 0] - pair[0, 0, 0, 0]
        dc = pair[1, 0, 0, 1] - pair[0, 0, 0, 1]
        assert (np.sign(dr), np.sign(dc)) == (r - 1, c - 1)
    jittered = patch_pair(image, tf.constant(7), tf.constant([3, 4]), p, gap, 2).numpy()
    assert abs(jittered[1, 0, 0, 0] - (origin + 2 * (p + gap))) <= 2
    with pytest.raises(ValueError, match="at least 398 px"):
        RelativePosition(SINGLE, image_size=256)


def test_gamut_bins_and_soft_encoding():
    centres = gamut_bins()
    assert len(centres) == 262 and np.all(centres % 10 == 0)
    # distinct and in (a, b) order: a bin's index is the same in every trained head
    assert [tuple(c) for c in centres] == sorted(set(map(tuple, centres.tolist())))
    # every bin holds an sRGB colour: its centre is within half a bin of a real colour
    rgb = np.random.default_rng(0).random((200000, 3)).astype("float32")
    ab = rgb_to_lab(tf.constant(rgb)).numpy()[:, 1:]
    nearest = np.abs(ab[:, None, :] - centres[None, :40]).max(-1).min(0)
    assert np.all(nearest <= 5.0 + 1e-3)
    encoded = soft_encode(ab[:100], centres).numpy()
    np.testing.assert_allclose(encoded.sum(-1), 1.0, atol=1e-5)
    assert np.all((encoded > 0).sum(-1) == 5)
    # weights: exp(-d²/2σ²) of the 5 nearest centres, by hand for one colour
    d2 = ((centres - ab[0]) ** 2).sum(-1)
    five = np.argsort(d2)[:5]
    expected = np.exp(-d2[five] / 50.0) / np.exp(-d2[five] / 50.0).sum()
    np.testing.assert_allclose(encoded[0, five], expected, rtol=1e-4)
    # the annealed mean at a very low temperature is the mode's centre
    logits = np.zeros((1, len(centres)), "float32")
    logits[0, 17] = 5.0
    np.testing.assert_allclose(annealed_mean(logits, centres, 0.01).numpy()[0], centres[17])
    weights = rebalancing_weights([0.7, 0.2, 0.1])
    assert np.isclose(np.sum(np.array([0.7, 0.2, 0.1]) * weights), 1.0)
    assert weights[2] > weights[1] > weights[0]  # rare bins weigh more


def test_triplet_loss_matches_numpy():
    e = np.random.default_rng(1).normal(size=(5, 3, 7)).astype("float32")

    def cos_dist(a, b):
        return 1 - (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)

    expected = np.maximum(cos_dist(e[:, 0], e[:, 1]) - cos_dist(e[:, 0], e[:, 2]) + 0.5, 0)
    np.testing.assert_allclose(triplet_loss(tf.constant(e)).numpy(), expected, rtol=1e-5)


def test_siamese_heads_pair_the_right_patches():
    """Rearranged trunk features: pair i uses patches (i, 0) and (i, 1), triplet i its own."""
    rp = _small_tasks()[0]
    inputs = keras.Input(rp.input_shape(64))
    patches = rp.to_trunk(inputs)
    features = keras.layers.Conv2D(8, 1, strides=8)(patches)  # stand-in trunk, stride 8
    model = keras.Model(inputs, rp.build_head(features, 64))
    assert patches.shape == (None, 16, 16, 3) and model.output.shape == (None, 8)
    probe = keras.Model(inputs, patches)
    x = np.random.default_rng(2).random((3, 2, 16, 16, 3)).astype("float32")
    rows = probe(x).numpy()
    np.testing.assert_array_equal(rows[2 * 1 + 1], x[1, 1])  # pair 1, second patch
    np.testing.assert_array_equal(rows[2 * 2], x[2, 0])
    ex = _small_tasks()[2]
    out = ex.prepare_batch(tf.constant(np.arange(4)[:, None] * np.ones((4, 3))), tf.zeros(4))
    np.testing.assert_array_equal(out[0].numpy()[:, 2], [1, 2, 3, 0])  # x3 from image i + 1
    np.testing.assert_array_equal(out[0].numpy()[:, :2], np.arange(4)[:, None] * np.ones((4, 2)))


def test_motion_targets_are_the_mask_at_stride_8():
    task = _small_tasks()[3]
    mask = np.zeros((64, 64), np.uint8)
    mask[:16, :24] = 1
    mask[40:44, 40:44] = 1  # a quarter of a cell: not moving at stride 8
    _, target = task.prepare({"image": tf.zeros((64, 64, 3)), "motion": tf.constant(mask)}, None)
    expected = np.zeros((8, 8, 1), np.float32)
    expected[:2, :3] = 1
    np.testing.assert_array_equal(target.numpy(), expected)


@pytest.mark.slow
def test_four_tasks_with_lasso_and_harmonization_learn_a_repeated_batch():
    tasks = _small_tasks(harmonized=True)
    model = MultiTask(
        _trunk(),
        tasks,
        lasso_block="block3",
        lasso_l1=1e-4,
        input_size=64,
        per_task_optimizers=True,
    )
    model.compile(keras.optimizers.RMSprop(1e-3))
    batch = next(iter(model.datasets(8)))
    data = tf.data.Dataset.from_tensors(batch).repeat()

    # every head's gradient reaches its own lasso row (and only it)
    alpha = model.lasso.trainable_variables
    inputs, targets = batch
    with tf.GradientTape(persistent=True) as tape:
        outputs = model(inputs, training=True)
        losses = {n: tf.reduce_mean(t.loss(targets[n], outputs[n])) for n, t in model.tasks.items()}
    for i, name in enumerate(model.lasso.task_names):
        grads = tape.gradient(losses[name], alpha)
        assert float(tf.norm(grads[i])) > 0, name
        assert all(g is None or float(tf.norm(g)) == 0 for j, g in enumerate(grads) if j != i)
    del tape

    # per-task RMSProp keeps its own slots: one velocity per variable the task trains
    slots = []
    for name, optimizer in model.player_optimizers.items():
        velocities = [v for v in optimizer.variables if v.path.endswith("_velocity")]
        assert len(velocities) == len(model.variables_of(name))
        slots += [id(v) for v in velocities]
    assert len(slots) == len(set(slots))  # no slot shared between tasks

    history = model.fit(data, steps_per_epoch=1, epochs=12, verbose=0).history
    for task in tasks:
        curve = history[f"{task.name}_loss"]
        assert np.mean(curve[-3:]) < np.mean(curve[:3]), (task.name, curve)


def test_a_strong_l1_makes_alpha_rows_sparse():
    """Toy lasso: the target depends on two of eight inputs; a strong L1 leaves the other
    rows' weights near zero."""
    from zoo.layers import LassoMix

    rng = np.random.default_rng(0)
    units = [rng.normal(size=(256, 4)).astype("float32") for _ in range(8)]
    target = units[2] + 0.5 * units[5]
    inputs = [keras.Input((4,)) for _ in range(8)]
    mix = LassoMix(["toy"], l1=0.05, name="mix")
    model = keras.Model(inputs, mix(inputs)["toy"])
    model.compile(keras.optimizers.Adam(0.05), "mse")
    model.fit(units, target, epochs=150, batch_size=256, verbose=0)
    alpha = np.abs(mix.alphas()[0])
    assert set(np.argsort(alpha)[-2:]) == {2, 5}
    assert np.all(np.delete(alpha, [2, 5]) < 0.05)


def test_a_model_of_patch_tasks_only(tmp_path):
    from export import export_model

    model = MultiTask(_trunk(), _small_tasks()[:1], input_size=64)
    assert model.groups == {"relative_position": ["relative_position"]}
    assert model.image_tasks() == []
    pairs = np.zeros((2, 2, 16, 16, 3), "float32")
    assert model({"relative_position": pairs})["relative_position"].shape == (2, 8)
    with pytest.raises(ValueError, match="does not read whole 64px images"):
        export_model(model, "relative_position", str(tmp_path), "rp")


def test_colour_dropping_draws_a_channel_per_patch():
    task = _small_tasks()[0]
    assert task.drop_per_patch
    image = tf.constant(np.random.default_rng(3).random((64, 64, 3)), tf.float32)
    kept = set()
    for i in range(12):
        pair, _ = task.prepare({"image": image}, tf.constant([i, 7]))
        std = pair.numpy().std(axis=(1, 2))  # [2, 3]: the kept channel varies, noise barely
        kept.add(tuple(int(np.argmax(s)) for s in std))
        assert np.all(np.sort(std, axis=1)[:, :2] < 0.05 * np.sort(std, axis=1)[:, 2:])
    assert any(a != b for a, b in kept)  # the two patches of a pair can keep different channels


def test_motion_frames_of_another_shape():
    task = MotionSegmentation(MOTION, head_width=8, image_shape=(48, 64), **SMALL)
    assert task.input_shape(64) == (48, 64, 3)
    mask = np.zeros((96, 128), np.uint8)
    mask[:, 64:] = 1
    image, target = task.prepare(
        {"image": tf.zeros((96, 128, 3)), "motion": tf.constant(mask)}, None
    )
    assert image.shape == (48, 64, 3) and target.shape == (6, 8, 1)
    np.testing.assert_array_equal(target.numpy()[..., 0], np.repeat([[0] * 4 + [1] * 4], 6, 0))
