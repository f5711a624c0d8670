"""The conditional GAN layers against numpy references."""

import keras
import numpy as np
import pytest

from zoo.layers.gan import ConditionalBatchNorm, ProjectionOutput, SelfAttention, spectral

RNG = np.random.default_rng(0)


def _round_trip(layer, inputs):
    """The layer rebuilt from its config with its weights gives its outputs."""
    rebuilt = type(layer).from_config(layer.get_config())
    rebuilt(inputs)
    rebuilt.set_weights(layer.get_weights())
    np.testing.assert_allclose(
        np.asarray(rebuilt(inputs)), np.asarray(layer(inputs)), rtol=1e-5, atol=1e-6
    )
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"zoo>{type(layer).__name__}"


def test_conditional_batch_norm_is_a_per_class_scale_and_offset_of_batch_norm():
    x = RNG.normal(2.0, 3.0, (6, 4, 4, 5)).astype("float32")
    labels = np.array([0, 2, 1, 2, 0, 1])
    layer = ConditionalBatchNorm(3)
    # untrained: plain BatchNorm (gamma 1, beta 0), over batch and positions
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    normed = (x - mean) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(layer([x, labels], training=True), normed, rtol=1e-4, atol=1e-4)
    gamma = RNG.normal(size=(3, 5)).astype("float32")
    beta = RNG.normal(size=(3, 5)).astype("float32")
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    want = gamma[labels][:, None, None] * normed + beta[labels][:, None, None]
    np.testing.assert_allclose(layer([x, labels], training=True), want, rtol=1e-4, atol=1e-4)
    # the moving statistics: momentum 0.999 keeps 99.9 % per step (PyTorch's 0.001)
    moving_mean = layer.norm.moving_mean.numpy()
    np.testing.assert_allclose(moving_mean, 0.001 * mean * 2, rtol=1e-3)  # two steps from 0
    _round_trip(layer, [x, labels])
    with pytest.raises(ValueError, match="`momentum` must be a number > 0 and < 1"):
        ConditionalBatchNorm(3, momentum=1.0)


def _numpy_attention(x, theta, phi, g, out, sigma):
    """SAGAN's attention in numpy with 1x1 kernels [C_in, C_out] and biases."""

    def conv(t, kernel_bias):
        kernel, bias = kernel_bias
        return t @ kernel.reshape(kernel.shape[-2:]) + bias

    def pool(t):
        b, h, w, c = t.shape
        return t.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))

    b, h, w, c = x.shape
    q = conv(x, theta).reshape(b, h * w, -1)
    k = pool(conv(x, phi)).reshape(b, h * w // 4, -1)
    v = pool(conv(x, g)).reshape(b, h * w // 4, -1)
    logits = q @ k.transpose(0, 2, 1)
    a = np.exp(logits - logits.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    return x + sigma * conv((a @ v).reshape(b, h, w, c // 2), out)


def test_self_attention_against_numpy_and_starting_as_the_identity():
    x = RNG.normal(size=(2, 4, 6, 16)).astype("float32")
    layer = SelfAttention(spectral=False)
    np.testing.assert_allclose(layer(x), x, atol=1e-6)  # sigma starts at 0
    layer.sigma.assign(0.7)
    weights = [
        (sub.kernel.numpy(), sub.bias.numpy())
        for sub in (layer.theta, layer.phi, layer.g, layer.out)
    ]
    assert [w[0].shape[-1] for w in weights] == [2, 2, 8, 16]  # C/8, C/8, C/2, C
    np.testing.assert_allclose(layer(x), _numpy_attention(x, *weights, 0.7), rtol=1e-4, atol=1e-5)
    _round_trip(layer, x)
    with pytest.raises(ValueError, match="even height and width and >= 8 channels"):
        SelfAttention()(np.zeros((1, 3, 3, 16), "float32"))


def test_projection_output_is_linear_plus_the_class_embedding_product():
    h = RNG.normal(size=(5, 12)).astype("float32")
    labels = np.array([3, 0, 1, 3, 2])
    layer = ProjectionOutput(4, spectral=False)
    got = np.asarray(layer([h, labels]))
    kernel, bias = layer.linear.kernel.numpy(), layer.linear.bias.numpy()
    embeddings = layer.embedding.kernel.numpy()  # [classes, D]
    want = h @ kernel + bias + (embeddings[labels] * h).sum(-1, keepdims=True)
    assert got.shape == (5, 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    _round_trip(layer, [h, labels])


def test_spectral_normalisation_brings_the_largest_singular_value_to_one():
    """Keras' SpectralNormalization, as the GAN layers use it: each training call runs
    one power iteration and stores kernel / sigma; after enough the kernel's largest
    singular value (numpy's SVD of the kernel as a [fan-in, filters] matrix) is 1."""
    keras.utils.set_random_seed(0)  # the power iteration's starting vector
    conv = spectral(keras.layers.Conv2D(6, 3))
    x = RNG.normal(size=(2, 8, 8, 4)).astype("float32")
    conv(x)
    kernel = conv.layer.kernel
    kernel.assign(kernel.numpy() * 7.0)
    assert np.linalg.svd(kernel.numpy().reshape(-1, 6), compute_uv=False)[0] > 2
    for _ in range(50):  # power iteration: the error falls as (s2 / s1)^2 per call
        conv(x, training=True)
    top = np.linalg.svd(conv.layer.kernel.numpy().reshape(-1, 6), compute_uv=False)[0]
    assert top == pytest.approx(1.0, abs=1e-3)
    # SpectralNormalization wraps the self-attention and projection layers by default
    attention = SelfAttention()
    attention(x.repeat(2, axis=-1))
    assert isinstance(attention.theta, keras.layers.SpectralNormalization)
    projection = ProjectionOutput(3)
    projection([np.ones((2, 5), "float32"), np.array([0, 2])])
    assert isinstance(projection.embedding, keras.layers.SpectralNormalization)
    assert np.asarray(projection([np.ones((2, 5), "float32"), np.array([0, 2])])).dtype == "float32"
