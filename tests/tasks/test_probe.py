"""Online probes (Newell & Deng's code): heads on detached features that follow what a
self-supervised trunk learns without changing it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.data.synthetic import SceneSpec
from zoo.errors import UserError
from zoo.methods import MultiTask
from zoo.tasks import Classification, Colorization, Depth, Pose, Probe, Rotation
from zoo.trunks import resnet9

SINGLE = SceneSpec(variant="----", mode="single", resolution=32)
MULTI = SceneSpec(variant="----", mode="multi", resolution=32)
SMALL = {"num_examples": 32, "eval_examples": 16}


def _trunk(input_shape):
    return resnet9(widths=[8, 16, 16, 32], input_shape=input_shape)


def _model(probes=()):
    keras.utils.set_random_seed(0)
    tasks = [Rotation(SINGLE, **SMALL), *probes]
    model = MultiTask(_trunk, tasks, input_size=32)
    model.compile(keras.optimizers.Adam(1e-2))
    return model


def test_probes_train_their_heads_and_leave_the_trunk_as_the_objective_alone_moves_it():
    classification, pose = Classification(SINGLE, **SMALL), Pose(SINGLE, **SMALL)
    probes = [Probe(t, kind) for t in (classification, pose) for kind in ("linear", "mlp")]
    alone, probed = _model(), _model(probes)
    assert [p.name for p in probes] == [
        "classification_linear",
        "classification_mlp",
        "pose_linear",
        "pose_mlp",
    ]
    assert len(probed.groups) == 2  # the four probes read one input: one extra trunk pass
    trunk_weights = [v.path for v in alone.trunk.trainable_variables]
    np.testing.assert_array_equal(alone.trunk.get_weights()[0], probed.trunk.get_weights()[0])
    heads = {
        p.name: [v.numpy().copy() for v in probed.task_model(p.name).trainable_variables[-2:]]
        for p in probes
    }
    history = {}
    for name, model in (("alone", alone), ("probed", probed)):
        history[name] = model.fit(model.datasets(8), steps_per_epoch=6, epochs=1, verbose=0).history
    # the trunk's parameters took the same steps: the probes' gradients never reached it
    for a, b, path in zip(
        alone.trunk.trainable_variables, probed.trunk.trainable_variables, trunk_weights
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=path)
    np.testing.assert_allclose(
        history["alone"]["rotation_loss"], history["probed"]["rotation_loss"], rtol=1e-5
    )
    # every probe moved its head and logs its loss and accuracy every epoch
    for probe in probes:
        after = probed.task_model(probe.name).trainable_variables[-2:]
        assert not np.allclose(after[0].numpy(), heads[probe.name][0]), probe.name
        assert len(history["probed"][f"{probe.name}_accuracy"]) == 1
    metrics = probed.heldout_metrics(8)
    assert set(metrics) == {"rotation", *(p.name for p in probes)}
    assert 0 <= metrics["pose_mlp"]["accuracy"] <= 1


def test_a_dense_probe_predicts_at_the_target_size_and_only_standard_heads_are_probed():
    depth = Depth(MULTI, target_stride=4, **SMALL)
    for kind, layers in (("linear", 1), ("mlp", 2)):
        probe = Probe(depth, kind)
        features = keras.Input((4, 4, 8))
        head = keras.Model(features, probe.build_head(features, 32))
        assert tuple(head.output.shape) == (None, 8, 8, 1)
        convolutions = [x for x in head.layers if isinstance(x, keras.layers.Conv2D)]
        assert len(convolutions) == layers and convolutions[-1].kernel_size == (1, 1)
        # no gradient flows into the features
        x = tf.random.normal((2, 4, 4, 8))
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(head(x, training=True))
        assert tape.gradient(y, x) is None
    rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(probe))
    assert rebuilt.get_config() == probe.get_config() and rebuilt.name == "depth_mlp"
    named = Probe(Pose(SINGLE, **SMALL), name="deep_probe")  # metrics named after it
    assert [m.name for m in named.keras_metrics()] == ["deep_probe_accuracy"]
    with pytest.raises(UserError, match="cannot be probed"):
        Probe(Colorization(MULTI, **SMALL))
    with pytest.raises(UserError, match="cannot be probed"):
        Probe(Rotation(SINGLE, **SMALL))
    with pytest.raises(ValueError, match="kind"):
        Probe(depth, "deep")
