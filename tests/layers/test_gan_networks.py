"""The conditional generators and discriminators: shapes, widths, conditioning."""

import keras
import numpy as np
import pytest

from zoo.layers.gan import ConditionalBatchNorm, SelfAttention
from zoo.layers.gan_networks import (
    dcgan_discriminator,
    dcgan_generator,
    latent_embedding,
    sagan_discriminator,
    sagan_generator,
)

RNG = np.random.default_rng(0)


def _conditioned(generator):
    """Per-class scales in every conditional BN (untrained ones are 1 for every class)."""
    for layer in generator.layers:
        if isinstance(layer, ConditionalBatchNorm):
            layer.gamma.assign(RNG.uniform(0.5, 1.5, layer.gamma.shape))


@pytest.mark.parametrize("build", [sagan_generator, dcgan_generator])
def test_generators_draw_images_of_the_class_they_are_given(build):
    keras.utils.set_random_seed(0)
    generator = build(7, output_size=32, z_dim=16, base_width=8)
    _conditioned(generator)
    z = RNG.normal(size=(3, 16)).astype("float32")
    images = np.asarray(generator([z, np.array([0, 1, 2])], training=False))
    assert images.shape == (3, 32, 32, 3) and np.abs(images).max() < 1
    other = np.asarray(generator([z, np.array([4, 1, 2])], training=False))
    assert np.abs(images[0] - other[0]).max() > 1e-3  # its class changes the image
    np.testing.assert_allclose(images[1:], other[1:], atol=1e-6)  # and only its own


def test_sagan_networks_at_the_code_s_full_size():
    """MGM's code at 128 px with g_conv_dim = d_conv_dim = 64: the generator's blocks
    1024 (8 px), 512, 256, attention at 32 px, 128, 64 (128 px); the discriminator's
    64 (64 px), 128, attention at 32 px, 256, 512, 1024 (4 px), 1024 (4 px)."""
    generator = sagan_generator(27)
    widths = [
        (layer.output.shape[1], layer.output.shape[-1])
        for layer in generator.layers
        if layer.name.endswith("_conv2")
    ]
    assert widths == [(8, 1024), (16, 512), (32, 256), (64, 128), (128, 64)]
    attention = [x for x in generator.layers if isinstance(x, SelfAttention)]
    assert len(attention) == 1 and attention[0].output.shape[1:] == (32, 32, 256)
    assert generator.output.shape[1:] == (128, 128, 3)

    discriminator = sagan_discriminator(27)
    widths = [
        (layer.output.shape[1], layer.output.shape[-1])
        for layer in discriminator.layers
        if isinstance(layer, keras.layers.Add)
    ]
    assert widths == [(64, 64), (32, 128), (16, 256), (8, 512), (4, 1024), (4, 1024)]
    attention = [x for x in discriminator.layers if isinstance(x, SelfAttention)]
    assert len(attention) == 1 and attention[0].output.shape[1:] == (32, 32, 128)
    assert discriminator.output.shape[1:] == (1,)


@pytest.mark.parametrize("build", [sagan_discriminator, dcgan_discriminator])
def test_discriminators_score_an_image_for_its_class(build):
    keras.utils.set_random_seed(0)
    discriminator = build(5, input_size=32, base_width=8)
    images = RNG.uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    scores = np.asarray(discriminator([images, np.array([0, 3])]))
    assert scores.shape == (2, 1) and np.isfinite(scores).all()
    moved = np.asarray(discriminator([images, np.array([1, 3])]))
    assert abs(moved[0, 0] - scores[0, 0]) > 1e-4 and moved[1, 0] == pytest.approx(scores[1, 0])


def test_image_sizes_are_four_times_a_power_of_two():
    for build in (sagan_generator, dcgan_generator):
        with pytest.raises(ValueError, match=r"4·2\^k \(8, 16, 32, 64, 128, ...\). Received: 48"):
            build(3, 48)


def test_latent_embedding_pools_projects_and_normalises():
    emb = latent_embedding((4, 4, 360))
    assert emb.output.shape == (None, 128)
    assert isinstance(emb.get_layer("embedding_dense"), keras.layers.SpectralNormalization)
    features = RNG.normal(3.0, 2.0, (16, 4, 4, 360)).astype("float32")
    z = np.asarray(emb(features, training=True))  # batch statistics: mean 0, variance 1
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(z.var(0), 1, rtol=1e-2)
