import keras
import numpy as np
import pytest

from zoo.trunks import DEPTHS, refinement_network, resnet, resnet9


def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.output.items()}


@pytest.mark.slow
@pytest.mark.parametrize("version", [1, 2])
def test_parameter_count_equals_keras_applications(version):
    ours = resnet(50, version=version)
    name = "ResNet50" + ("V2" if version == 2 else "")
    reference = getattr(keras.applications, name)(weights=None, include_top=False)
    assert ours.count_params() == reference.count_params()


# Pinned like Model Garden's ResNet tests: a change of layout shows up here. The deeper
# counts are keras.applications' ResNet101/152 (V2) without top (Keras 3.15), pinned so
# that the suite builds each large model once.
@pytest.mark.parametrize(
    "depth,version,count",
    [
        (50, 1, 23_587_712),
        (50, 2, 23_564_800),
        (101, 1, 42_658_176),
        (101, 2, 42_626_560),
        (152, 1, 58_370_944),
        (152, 2, 58_331_648),
    ],
)
def test_pinned_parameter_counts(depth, version, count):
    assert resnet(depth, version=version).count_params() == count


def test_doersch_trunk_exposes_23_block3_units_at_stride_8():
    trunk = resnet(101, version=2, stop_at="block3", output_stride=8, input_shape=(96, 96, 3))
    shapes = _shapes(trunk)
    units = [k for k in shapes if k.startswith("block3/unit_")]
    assert units == [f"block3/unit_{m}" for m in range(1, 24)]
    assert all(shapes[k] == (None, 12, 12, 1024) for k in units)
    assert shapes["block3"] == (None, 12, 12, 1024)
    assert "block4" not in shapes
    assert shapes["stem"] == (None, 24, 24, 64)


@pytest.mark.parametrize("depth", sorted(DEPTHS))
def test_endpoint_names_and_channels(depth):
    kind, units = DEPTHS[depth]
    trunk = resnet(depth, version=1, width_multiplier=0.125, input_shape=(64, 64, 3))
    shapes = _shapes(trunk)
    expected = ["stem"]
    for s, n in enumerate(units):
        expected += [f"block{s + 1}/unit_{j + 1}" for j in range(n)] + [f"block{s + 1}"]
    assert list(shapes) == expected
    expansion = 4 if kind == "bottleneck" else 1
    for s, width in enumerate([8, 16, 32, 64]):
        assert shapes[f"block{s + 1}"][-1] == width * expansion


@pytest.mark.parametrize(
    "version,output_stride,strides",
    [
        # v1 strides the first unit of stages 2-4, v2 (TF-Slim) the last unit of stages 1-3.
        (1, None, (4, 8, 16, 32)),
        (1, 32, (4, 8, 16, 32)),
        (1, 16, (4, 8, 16, 16)),
        (1, 8, (4, 8, 8, 8)),
        (2, None, (8, 16, 32, 32)),
        (2, 32, (8, 16, 32, 32)),
        (2, 16, (8, 16, 16, 16)),
        (2, 8, (8, 8, 8, 8)),
    ],
)
def test_block_strides(version, output_stride, strides):
    trunk = resnet(
        26,
        version=version,
        width_multiplier=0.125,
        output_stride=output_stride,
        input_shape=(64, 64, 3),
    )
    shapes = _shapes(trunk)
    for block, stride in zip(["block1", "block2", "block3", "block4"], strides):
        assert shapes[block][1:3] == (64 // stride, 64 // stride), block


def test_v2_unit_strides_follow_tf_slim():
    shapes = _shapes(resnet(26, version=2, width_multiplier=0.125, input_shape=(64, 64, 3)))
    # stride in the last unit: block2/unit_1 runs at the stride of block1's output.
    assert shapes["block1/unit_1"][1] == 16 and shapes["block1/unit_2"][1] == 8
    assert shapes["block2/unit_1"][1] == 8 and shapes["block2/unit_2"][1] == 4


def test_dilation_rates():
    trunk = resnet(26, version=2, width_multiplier=0.125, output_stride=8)
    convs = [layer for layer in trunk.layers if isinstance(layer, keras.layers.Conv2D)]
    rate = {layer.name: layer.dilation_rate[0] for layer in convs}
    assert rate["block1_unit_2_2_conv"] == 1  # the strided 3x3 of block1 keeps its stride
    assert rate["block2_unit_2_2_conv"] == 1  # converted stride: rate before the change
    assert rate["block3_unit_1_2_conv"] == 2
    assert rate["block3_unit_2_2_conv"] == 2
    assert rate["block4_unit_1_2_conv"] == 4
    strides = {layer.name: layer.strides[0] for layer in convs}
    assert strides["block1_unit_2_2_conv"] == 2 and strides["block2_unit_2_2_conv"] == 1


def _copy_weights(src, dst):
    for layer in src.layers:
        if layer.weights:
            dst.get_layer(layer.name).set_weights(layer.get_weights())


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("depth", [18, 26])
def test_atrous_output_subsampled_equals_strided_output(version, depth):
    """TF-Slim's atrous test: same weights, stride-8 output sampled every 4th pixel == stride 32."""
    kwargs = dict(version=version, width_multiplier=0.125)
    strided = resnet(depth, **kwargs)
    atrous = resnet(depth, output_stride=8, **kwargs)
    rng = np.random.default_rng(0)
    for layer in strided.layers:  # non-trivial BN statistics
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, c),
                    rng.normal(0, 0.1, c),
                    rng.normal(0, 0.1, c),
                    rng.uniform(0.5, 1.5, c),
                ]
            )
    _copy_weights(strided, atrous)
    images = rng.random((2, 65, 65, 3)).astype("float32")  # 2^k n + 1 pixels, as in TF-Slim
    dense = atrous(images)
    sparse = strided(images)
    for block in ("block1", "block2", "block3", "block4"):
        full, sub = dense[block].numpy(), sparse[block].numpy()
        factor = (full.shape[1] - 1) // (sub.shape[1] - 1)
        np.testing.assert_allclose(full[:, ::factor, ::factor], sub, atol=1e-4, rtol=1e-4)
    assert dense["block4"].shape[1:3] == (9, 9) and sparse["block4"].shape[1:3] == (3, 3)


def test_explicit_widths_mgm():
    trunk = resnet(18, version=1, widths=[48, 96, 192, 360], input_shape=(32, 32, 3))
    shapes = _shapes(trunk)
    assert [shapes[f"block{i}"][-1] for i in range(1, 5)] == [48, 96, 192, 360]
    assert shapes["stem"][-1] == 48


def test_mgm_code_s_encoder():
    """MGM's released encoder: ResNet-34 block counts at [48, 96, 192, 360] after a 5x5
    stride-2 stem of 64 channels and its max-pool, 360x4x4 at 128 px (the paper's
    ResNet-18 with 8x8 is `depth=18, output_stride=16`)."""
    trunk = resnet(
        34,
        version=1,
        widths=[48, 96, 192, 360],
        stem_kernel=5,
        stem_width=64,
        input_shape=(128, 128, 3),
    )
    shapes = _shapes(trunk)
    assert shapes["stem"] == (None, 32, 32, 64) and shapes["block4"] == (None, 4, 4, 360)
    assert tuple(trunk.get_layer("stem_conv").kernel.shape) == (5, 5, 3, 64)
    units = {name.split("/")[0] for name in shapes if "/unit_" in name}
    assert sum(1 for name in shapes if "/unit_" in name) == 3 + 4 + 6 + 3 and len(units) == 4
    paper = resnet(
        18, version=1, widths=[48, 96, 192, 360], output_stride=16, input_shape=(128, 128, 3)
    )
    assert _shapes(paper)["block4"] == (None, 8, 8, 360)


def test_norms():
    def norm_layers(trunk, cls):
        return [layer for layer in trunk.layers if isinstance(layer, cls)]

    gn = resnet(26, width_multiplier=0.25, norm="group")
    assert not norm_layers(gn, keras.layers.BatchNormalization)
    gn_layers = norm_layers(gn, keras.layers.GroupNormalization)
    groups = {layer.name: layer.groups for layer in gn_layers}
    assert groups["block4_unit_1_1_norm"] == 32  # 128 channels
    assert groups["block1_unit_1_1_norm"] == 16  # 16 channels: largest divisor of 32
    sync = norm_layers(
        resnet(18, width_multiplier=0.25, norm="sync_batch"), keras.layers.BatchNormalization
    )
    assert sync and all(layer.synchronized for layer in sync)
    plain = norm_layers(resnet(18, width_multiplier=0.25), keras.layers.BatchNormalization)
    assert not any(layer.synchronized for layer in plain)


def test_any_input_size_and_numbers():
    trunk = resnet(18, version=2, width_multiplier=0.125, stop_at="block2")
    out = trunk(np.random.default_rng(1).random((2, 37, 50, 3)).astype("float32"))
    # v2 block2 is at stride 16: ceil(37 / 16), ceil(50 / 16)
    assert out["block2"].shape == (2, 3, 4, 16)
    assert np.all(np.isfinite(out["block2"].numpy()))


def test_v2_block4_is_post_normalised():
    trunk = resnet(26, version=2, width_multiplier=0.125, input_shape=(32, 32, 3))
    out = trunk(np.random.default_rng(2).random((1, 32, 32, 3)).astype("float32"))
    assert out["block4"].numpy().min() >= 0.0  # ReLU after the final norm
    assert out["block4/unit_2"].numpy().min() < 0.0  # raw residual sum


def test_keras_file_round_trip(tmp_path):
    trunk = resnet(18, version=2, width_multiplier=0.125, output_stride=16)
    images = np.random.default_rng(3).random((1, 32, 32, 3)).astype("float32")
    path = str(tmp_path / "trunk.keras")
    trunk.save(path)
    loaded = keras.models.load_model(path)
    a, b = trunk(images), loaded(images)
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_allclose(a[k].numpy(), b[k].numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(depth=7), "Received: depth=7"),
        (dict(depth=50, version=3), "Received: version=3"),
        (dict(depth=50, norm="layer"), "Received: norm='layer'"),
        (dict(depth=50, output_stride=4), "Received: output_stride=4"),
        (dict(depth=50, stop_at="block5"), "Received: stop_at='block5'"),
        (dict(depth=50, widths=[64, 128]), "must be 4 positive integers"),
        (dict(depth=50, widths=[8, 8, 8, 8], width_multiplier=0.5), "not both"),
        (dict(depth=50, version=1, stop_at="block2", output_stride=16), "larger than the stride"),
        (dict(depth=50, input_shape=(32, 32)), "input_shape"),
        (dict(depth=18, stem_kernel=4), "`stem_kernel` must be odd. Received: 4"),
        (dict(depth=18, stem_width=0), "`stem_width` must be an int >= 1 or None"),
        (dict(depth=50, weights="imagenet", stem_kernel=5), "a 7x7 stem"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        resnet(**kwargs)


@pytest.mark.parametrize(
    "output_stride,strides", [(None, (1, 2, 4, 8)), (4, (1, 2, 4, 4)), (2, (1, 2, 2, 2))]
)
def test_resnet9(output_stride, strides):
    trunk = resnet9(output_stride=output_stride, input_shape=(64, 64, 3))
    shapes = _shapes(trunk)
    assert list(shapes) == ["stem", "block1/unit_1", "block1", "block2", "block3/unit_1", "block3"]
    for key, stride, width in zip(
        ["stem", "block1", "block2", "block3"], strides, [64, 128, 256, 512]
    ):
        assert shapes[key] == (None, 64 // stride, 64 // stride, width), key
    # Page (2018): prep 64, layer1 128 + 2x128 residual, layer2 256, layer3 512 + 2x512,
    # each conv without bias and followed by BN (4 values per channel).
    convs = 3 * 3 * (3 * 64 + 64 * 128 + 2 * 128 * 128 + 128 * 256 + 256 * 512 + 2 * 512 * 512)
    bns = 4 * (64 + 3 * 128 + 256 + 3 * 512)
    assert trunk.count_params() == convs + bns


def test_gin_configures_the_trunk():
    import gin

    from zoo.trunks import resnet as builder

    with gin.unlock_config():
        gin.parse_config(
            "zoo.trunks.resnet.width_multiplier = 0.125\nzoo.trunks.resnet.norm = 'group'"
        )
    try:
        trunk = builder(18)
        assert trunk.output["block4"].shape[-1] == 64
        assert any(isinstance(layer, keras.layers.GroupNormalization) for layer in trunk.layers)
    finally:
        gin.clear_config()


@pytest.mark.parametrize(
    "version,output_stride,strides",
    [(1, None, (2, 4, 8, 16)), (1, 8, (2, 4, 8, 8)), (2, None, (4, 8, 16, 16))],
)
def test_without_the_stem_pool_every_map_is_twice_as_large(version, output_stride, strides):
    # Newell & Deng's ResNet-50 "with reduced pooling" (their code's skip_init_pool)
    trunk = resnet(
        50,
        version=version,
        width_multiplier=0.0625,
        output_stride=output_stride,
        stem_pool=False,
        input_shape=(64, 64, 3),
    )
    shapes = _shapes(trunk)
    assert shapes["stem"][1:3] == (32, 32)
    for block, stride in zip(["block1", "block2", "block3", "block4"], strides):
        assert shapes[block][1:3] == (64 // stride, 64 // stride), block
    assert "stem_pool" not in [layer.name for layer in trunk.layers]
    with pytest.raises(ValueError, match="max-pool"):
        resnet(50, version=1, stem_pool=False, weights="imagenet")


def test_mgm_refinement_network_reads_every_prediction():
    """R of MGM's code at 128 px: per map a 5x5/2 stem (64), a max-pool, basic units
    [3, 4, 3] at [48, 96, 192] with every stage strided (4x4 before the global max-pool),
    the three poolings concatenated (576) -> 128 -> 27 scene logits."""
    shapes = {
        "semantic_segmentation": (128, 128, 40),
        "depth": (128, 128, 1),
        "normals": (128, 128, 3),
    }
    keras.utils.set_random_seed(0)
    r = refinement_network(shapes, 27)
    assert r.output.shape == (None, 27)
    for key in shapes:
        last = r.get_layer(f"refinement_{key}_block3_3_out").output
        assert tuple(last.shape) == (None, 4, 4, 192)
        adds = [x for x in r.layers if x.name.startswith(f"refinement_{key}_block")]
        assert sum(x.name.endswith("_add") for x in adds) == 3 + 4 + 3
    assert r.get_layer("refinement_hidden").kernel.shape == (576, 128)
    rng = np.random.default_rng(0)
    maps = {k: rng.normal(size=(2, *s)).astype("float32") for k, s in shapes.items()}
    logits = np.asarray(r(maps, training=False))
    for key in shapes:  # each prediction moves the logits
        moved = dict(maps, **{key: maps[key] + 1.0})
        assert np.abs(np.asarray(r(moved, training=False)) - logits).max() > 1e-4
    code = refinement_network({"depth": (64, 64, 1)}, 7, relu_logits=True)
    assert np.asarray(code({"depth": maps["depth"][:, :64, :64]})).min() >= 0
    with pytest.raises(ValueError, match="`widths` and `units` must have one length"):
        refinement_network(shapes, 27, widths=(8, 16), units=(1,))
