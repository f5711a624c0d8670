import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.data import augment
from zoo.data.synthetic import SceneSpec, generate, write_tfrecords
from zoo.tasks import Classification, Contours, Depth, Normals, Pose, Rotation, SemanticSegmentation

MULTI = SceneSpec(variant="----", mode="multi", resolution=32)
SINGLE = SceneSpec(variant="----", mode="single", resolution=32)


def _first(task, split="eval", batch=4):
    return next(iter(task.pipeline(split, batch)))


@pytest.mark.parametrize(
    "cls,key,shape",
    [
        (Depth, "depth", (4, 32, 32, 1)),
        (Normals, "normals", (4, 32, 32, 3)),
        (Contours, "contours", (4, 32, 32, 1)),
        (SemanticSegmentation, "semantics", (4, 32, 32)),
    ],
)
def test_dense_targets_are_the_rendered_maps_of_the_test_split(cls, key, shape):
    task = cls(MULTI, num_examples=8, eval_examples=8)
    x, y = _first(task)
    assert x.shape == (4, 32, 32, 3) and y.shape == shape
    test_spec = SceneSpec(variant="----", mode="multi", resolution=32, split="test")
    for i in range(4):
        expected = generate(test_spec, i)
        # images are stored as 8-bit PNG in the data cache
        np.testing.assert_allclose(x[i].numpy(), expected["image"], atol=0.5 / 255 + 1e-6)
        np.testing.assert_array_equal(
            np.reshape(y[i].numpy(), expected[key].shape),
            expected[key].astype(y.dtype.as_numpy_dtype),
        )


def test_global_labels():
    x, y = _first(Classification(SINGLE, num_examples=8, eval_examples=8))
    test_spec = SceneSpec(variant="----", mode="single", resolution=32, split="test")
    assert y.numpy().tolist() == [int(generate(test_spec, i)["label"]) for i in range(4)]
    _, pose = _first(Pose(SINGLE, num_examples=8, eval_examples=8))
    assert pose.numpy().tolist() == [int(generate(test_spec, i)["pose"]) for i in range(4)]


def test_rotation_labels_match_the_rotation():
    task = Rotation(MULTI, num_examples=8, eval_examples=8)
    x, k = _first(task, batch=8)
    test_spec = SceneSpec(variant="----", mode="multi", resolution=32, split="test")
    for i in range(8):
        original = generate(test_spec, i)["image"]
        rotated = np.rot90(original, int(k[i]))  # the cache stores 8-bit images
        np.testing.assert_allclose(x[i].numpy(), rotated, atol=0.5 / 255 + 1e-6)
    assert len(set(k.numpy().tolist())) > 1


def test_harmonizer_applies_to_inputs():
    x, _ = _first(Depth(MULTI, num_examples=8, eval_examples=8, harmonizer="lab_l3"))
    np.testing.assert_array_equal(x[..., 0].numpy(), x[..., 2].numpy())


def test_training_pipeline_repeats_and_eval_does_not():
    task = Depth(MULTI, num_examples=8, eval_examples=8)
    assert sum(1 for _ in task.pipeline("eval", 4)) == 2
    assert sum(1 for _ in task.pipeline("train", 4).take(5)) == 5


def test_tfrecord_source(tmp_path):
    write_tfrecords(MULTI, 6, str(tmp_path / "train"))
    write_tfrecords(MULTI, 4, str(tmp_path / "eval"))
    task = Depth(str(tmp_path / "train"), eval_source=str(tmp_path / "eval"))
    x, y = _first(task)
    np.testing.assert_array_equal(y[0, ..., 0].numpy(), generate(MULTI, 0)["depth"])
    with pytest.raises(ValueError, match="eval_source"):
        Depth(str(tmp_path / "train"))


def test_heads_and_losses():
    features = keras.Input((8, 8, 16))
    depth = Depth(MULTI, num_examples=8, head_width=16)
    head = keras.Model(features, depth.build_head(features, 32))
    assert head.output.shape == (None, 32, 32, 1)
    deconvs = [layer for layer in head.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert [layer.filters for layer in deconvs] == [16, 32]  # 8 -> 16 -> 32, halving to >= 32
    seg = SemanticSegmentation(MULTI, num_examples=8)
    assert keras.Model(features, seg.build_head(features, 32)).output.shape[-1] == 11
    rot = Rotation(MULTI, num_examples=8)
    assert keras.Model(features, rot.build_head(features, 32)).output.shape == (None, 4)
    labels = tf.constant([0, 3])
    logits = tf.constant([[5.0, 0, 0, 0], [0, 0, 0, 5.0]])
    np.testing.assert_allclose(
        rot.loss(labels, logits).numpy(), -np.log(np.exp(5) / (np.exp(5) + 3)), rtol=1e-5
    )
    # AlexNet-like maps (13x13 of 227 px): deconvolutions to the nearest power of two,
    # then a resize to the input size
    small = keras.Input((6, 6, 4))
    odd = keras.Model(small, depth.build_head(small, 32))
    assert odd.output.shape == (None, 32, 32, 1)
    sizes = [layer.output.shape[1] for layer in odd.layers[1:]]
    assert sizes == [12, 12, 12, 24, 24, 24, 32, 32]  # 6 -> 12 -> 24, resized to 32
    with pytest.raises(ValueError, match="at most the input size"):
        depth.build_head(keras.Input((40, 40, 4)), 32)


def test_source_errors():
    with pytest.raises(
        KeyError, match=r"needs \['label'\], which Synthetic\(mode 'multi'.*mode \['single'\]"
    ):
        Classification(MULTI)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Depth("/no/such/folder", eval_source="/no/such/folder")
    with pytest.raises(TypeError, match="a SceneSpec or a folder"):
        Depth(42)


def test_classification_classes(tmp_path):
    from zoo.data.sources import TFRecords
    from zoo.data.tfrecord import write_tfrecords

    examples = ({"image": np.zeros((8, 8, 3)), "label": np.int32(i % 3)} for i in range(6))
    write_tfrecords(examples, str(tmp_path))
    unnamed = Classification(str(tmp_path), eval_source=str(tmp_path), classes=3)
    features = keras.Input((2, 2, 4))
    assert unnamed.classes == 3 and unnamed.build_head(features, 8).shape == (None, 3)
    assert Classification(str(tmp_path), eval_source=0.5).classes == 10  # nothing named
    (tmp_path / "labels.json").write_text('{"label": ["a", "b", "c"]}')
    assert Classification(TFRecords(str(tmp_path)), eval_source=0.5).classes == 3
    with pytest.raises(ValueError, match="classes=4, but the source names 3 classes"):
        Classification(str(tmp_path), eval_source=0.5, classes=4)
    assert Classification(MULTI.__class__(variant="----", resolution=16)).classes == 10


def test_image_steps_augment_harmonized_training_images_only():
    # Newell & Deng's finetuning augmentation acts on the harmonized (Lab) channels
    flip = augment.Views(crop=None, steps=[augment.HorizontalFlip(p=1.0)], count=1)
    plain = Classification(SINGLE, harmonizer="lab", num_examples=4, eval_examples=4)
    flipped = Classification(
        SINGLE, harmonizer="lab", augment=flip, num_examples=4, eval_examples=4
    )
    assert plain.stream_key() != flipped.stream_key()  # never one shared pipeline
    for split in ("train", "eval"):
        a, labels_a = next(iter(plain.pipeline(split, 4)))
        b, labels_b = next(iter(flipped.pipeline(split, 4)))
        np.testing.assert_array_equal(labels_a, labels_b)
        wanted = a.numpy()[:, :, ::-1] if split == "train" else a.numpy()
        np.testing.assert_allclose(b.numpy(), wanted, atol=1e-6)
    rebuilt = Classification.from_config(flipped.get_config())
    assert rebuilt.augment == flip
    with pytest.raises(ValueError, match="count 1"):
        Classification(SINGLE, augment=augment.Views(crop=None), num_examples=4)


def test_depth_is_measured_and_served_within_the_scenes_farthest_surface(tmp_path):
    """A log-depth head's output is unbounded and exp() of a stray one is kilometres (a
    briefly trained quickstart run predicted up to 62 km on 0.4 % of its held-out
    pixels, taking its RMSE from 1.1 m to 94 m): predictions are clamped to the
    farthest depth the sources can hold before they are measured and served."""
    # the renderer's farthest depth: where the ground meets the far wall
    far = max(float(generate(MULTI, i)["depth"].max()) for i in range(4))
    assert MULTI.max_depth == pytest.approx(12.031, abs=1e-3)
    assert far <= MULTI.max_depth + 1e-4 and far > MULTI.max_depth - 0.1
    assert SINGLE.max_depth is None  # single objects have no depth map

    task = Depth(MULTI, num_examples=8, eval_examples=8)
    assert task.depth_cap() == pytest.approx(MULTI.max_depth)
    true = np.full((1, 2, 2, 1), 4.0, np.float32)
    log_pred = np.log(np.array([4.0, 4.0, 5e4, 1e-6], np.float32)).reshape(1, 2, 2, 1)
    clamped = np.array([4.0, 4.0, MULTI.max_depth, 1e-3])
    got = task.evaluate(true, log_pred)
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean((clamped - 4.0) ** 2)), rel=1e-5)
    assert got["mae"] == pytest.approx(np.mean(np.abs(clamped - 4.0)), rel=1e-5)
    served = task.serving_outputs(tf.constant(log_pred))["depth"].numpy().ravel()
    np.testing.assert_allclose(served, clamped, rtol=1e-5)
    # the loss sees the head's output as it is
    assert float(task.loss(true, log_pred)[0]) > float(task.loss(true, np.log(true))[0]) + 10

    # a bound given wins; a source that declares none (a folder) gets no cap
    assert Depth(MULTI, num_examples=8, max_depth=80.0).depth_cap() == 80.0
    # shares of the source (held out, labelled) keep its cap
    shared = Depth(MULTI, eval_source=0.25, num_examples=8, labelled_fraction=0.5)
    assert shared.depth_cap() == pytest.approx(MULTI.max_depth)
    write_tfrecords(MULTI, 2, str(tmp_path / "train"))
    folder = Depth(str(tmp_path / "train"), eval_source=str(tmp_path / "train"))
    assert folder.depth_cap() is None
    assert folder.evaluate(true, log_pred)["mae"] > 1e4
    for bad in (0, -1.0, "far", True):
        with pytest.raises(ValueError, match="Depth: `max_depth` must be a number > 0"):
            Depth(MULTI, num_examples=8, max_depth=bad)


def test_taskonomy_decoder_as_mgm_s_code_builds_it():
    """Stages of ConvT 2x2/2 -> BN -> ReLU -> conv 3x3 -> BN -> ReLU at 256, 128, 64, 48,
    32, then conv 3x3 to the task's channels; a stride-16 map takes the last four."""
    task = Normals(MULTI, num_examples=8, head="taskonomy")
    features = keras.Input((4, 4, 360))
    head = keras.Model(features, task.build_head(features, 128))
    assert head.output.shape == (None, 128, 128, 3)
    deconvs = [layer for layer in head.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert [(d.filters, d.kernel_size, d.strides) for d in deconvs] == [
        (w, (2, 2), (2, 2)) for w in (256, 128, 64, 48, 32)
    ]
    count, previous = 0, 360
    for w in (256, 128, 64, 48, 32):  # deconv, BN (4 per channel), conv 3x3, BN
        count += previous * w * 4 + w + 4 * w + w * w * 9 + w + 4 * w
        previous = w
    assert head.count_params() == count + 32 * 3 * 9 + 3
    stride_16 = keras.Input((8, 8, 360))
    deconvs = keras.Model(stride_16, task.build_head(stride_16, 128)).layers
    widths = [layer.filters for layer in deconvs if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert widths == [128, 64, 48, 32]
    with pytest.raises(ValueError, match="3x3 map up to 5 times; it cannot reach 128 px"):
        task.build_head(keras.Input((3, 3, 8)), 128)


def test_scene_classification(tmp_path):
    """MGM's weak label: the synthetic scenes' category (7 of them), or a source's
    "scene" labels with as many classes as it names."""
    from zoo.data.sources import TFRecords
    from zoo.data.tfrecord import write_tfrecords
    from zoo.tasks import SceneClassification

    task = SceneClassification(MULTI, num_examples=8, eval_examples=8)
    assert task.classes == 7 and task.name == "scene"
    _, labels = _first(task, batch=8)
    test_spec = SceneSpec(variant="----", mode="multi", resolution=32, split="test")
    assert labels.numpy().tolist() == [int(generate(test_spec, i)["scene"]) for i in range(8)]
    assert len(set(labels.numpy().tolist())) > 1
    with pytest.raises(ValueError, match="SceneClassification: classes=5, but the source names 7"):
        SceneClassification(MULTI, classes=5)
    examples = ({"image": np.zeros((8, 8, 3)), "scene": np.int32(i % 3)} for i in range(6))
    write_tfrecords(examples, str(tmp_path))
    (tmp_path / "labels.json").write_text('{"scene": ["kitchen", "street", "office"]}')
    assert SceneClassification(TFRecords(str(tmp_path)), eval_source=0.5).classes == 3
    with pytest.raises(ValueError, match=r"synthetic mode \['multi', 'motion'\] gives them"):
        SceneClassification(SINGLE)  # single objects have no scene


def test_a_contrastive_head_without_a_hidden_layer():
    """hidden=None: GAP -> one linear layer (MGM's code's SimCLR head, 360 -> 64)."""
    from zoo.tasks import BYOL, DenseCL, SimCLR

    features = keras.Input((4, 4, 360))
    simclr = SimCLR(MULTI, hidden=None, projection=64, num_examples=8)
    head = keras.Model(features, simclr.build_head(features, 32))
    assert head.count_params() == 360 * 64 + 64
    dense = DenseCL(MULTI, hidden=None, projection=8, grid=2, num_examples=8)
    dense_head = dense.build_head(features, 32)
    assert keras.Model(features, dense_head).count_params() == 2 * (360 * 8 + 8)
    with pytest.raises(ValueError, match="BYOL: `hidden` must be an int >= 1. Received: None"):
        BYOL(MULTI, hidden=None, num_examples=8)
