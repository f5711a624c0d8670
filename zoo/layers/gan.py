"""Layers of a class-conditional GAN (SAGAN, Zhang et al. 2019; used by MGM 2022):
conditional BatchNorm, self-attention, the projection discriminator's output, and
spectral normalisation (Miyato et al. 2018) of any dense or convolution layer.

Each takes the class as int labels [B] beside its features, so a generator or a
discriminator conditioned on the scene class is built from plain functional calls, e.g.
`ConditionalBatchNorm(num_classes)([x, labels])`.
"""

import keras
from keras import ops

from zoo import checks, internals
from zoo.errors import UserError


def spectral(layer, power_iterations: int = 1):
    """`layer` (Dense, Conv2D, Conv2DTranspose) with its kernel divided by its largest
    singular value, estimated by power iteration (Keras' SpectralNormalization; SAGAN
    and MGM's code: one iteration per step).

    Not as PyTorch's `spectral_norm`, which MGM's code uses: Keras normalises the stored
    kernel in place at each training call (kernel <- kernel / sigma) and the gradient
    does not flow through sigma; PyTorch keeps the raw weight and differentiates through
    W / sigma(W). Both keep the layer's largest singular value at 1."""
    checks.int_at_least(power_iterations, 1, "power_iterations", "spectral")
    return keras.layers.SpectralNormalization(
        layer, power_iterations=power_iterations, name=layer.name
    )


def _conv(filters, name, use_spectral):
    layer = keras.layers.Conv2D(filters, 1, name=name, kernel_initializer="glorot_uniform")
    return spectral(layer) if use_spectral else layer


@keras.saving.register_keras_serializable(package="zoo")
class ConditionalBatchNorm(keras.layers.Layer):
    """y = γ_c · BN(x) + β_c: BatchNorm without its own scale and offset, and a per-class
    scale and offset looked up by the label c (SAGAN's generator; MGM eq. 1). γ starts
    at 1 and β at 0, so an untrained layer is plain BatchNorm.

    Call with [x, labels]: x [B, ..., C], labels int [B].

    Args:
        num_classes: int >= 1.
        momentum: float in (0, 1). Of the moving statistics, as Keras counts it (the
            share kept per step). Defaults to 0.999: MGM's code's PyTorch momentum of
            0.001.
        epsilon: float > 0. Defaults to 1e-5 (PyTorch's, as the code).
    """

    def __init__(self, num_classes, momentum=0.999, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        checks.int_at_least(num_classes, 1, "num_classes", "ConditionalBatchNorm")
        checks.number_in(
            momentum, "momentum", 0, 1, "ConditionalBatchNorm", low_open=True, high_open=True
        )
        checks.number_in(epsilon, "epsilon", low=0, who="ConditionalBatchNorm", low_open=True)
        self.num_classes, self.momentum, self.epsilon = num_classes, momentum, epsilon
        self.norm = internals.SyncBatchNormalization(  # the global batch's statistics
            momentum=momentum, epsilon=epsilon, center=False, scale=False, name="norm"
        )

    def build(self, input_shape):
        x_shape, _ = input_shape
        channels = x_shape[-1]
        self.norm.build(x_shape)
        self.gamma = self.add_weight(
            shape=(self.num_classes, channels), initializer="ones", name="gamma"
        )
        self.beta = self.add_weight(
            shape=(self.num_classes, channels), initializer="zeros", name="beta"
        )

    def call(self, inputs, training=False):
        x, labels = inputs
        labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
        broadcast = (-1,) + (1,) * (len(x.shape) - 2) + (x.shape[-1],)
        gamma = ops.reshape(ops.take(self.gamma, labels, axis=0), broadcast)
        beta = ops.reshape(ops.take(self.beta, labels, axis=0), broadcast)
        return gamma * self.norm(x, training=training) + beta

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
        }


@keras.saving.register_keras_serializable(package="zoo")
class SelfAttention(keras.layers.Layer):
    """SAGAN's self-attention over the positions of a map x [B, H, W, C]:

        θ = x W_θ (C/8),  φ = maxpool₂(x W_φ) (C/8),  g = maxpool₂(x W_g) (C/2),
        A = softmax_j(θ_i · φ_j),  y = x + σ · (A g) W_o,

    with 1x1 convolutions W (spectrally normalised when `spectral`), the 2x2 max-pooling
    of φ and g that SAGAN's and MGM's code use, and σ a learnt scalar starting at 0 (the
    layer starts as the identity).

    Args:
        spectral: bool. Spectral normalisation of the four convolutions. Defaults to True.
    """

    def __init__(self, spectral=True, **kwargs):
        super().__init__(**kwargs)
        self.spectral = bool(spectral)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels < 8 or input_shape[1] is None or input_shape[1] % 2:
            raise UserError(
                "SelfAttention needs a map of known, even height and width and >= 8 "
                f"channels (its queries have C/8). Received shape: {tuple(input_shape)}"
            )
        self.theta = _conv(channels // 8, "theta", self.spectral)
        self.phi = _conv(channels // 8, "phi", self.spectral)
        self.g = _conv(channels // 2, "g", self.spectral)
        self.out = _conv(channels, "out", self.spectral)
        for layer in (self.theta, self.phi, self.g):
            layer.build(input_shape)
        self.out.build((*input_shape[:-1], channels // 2))
        self.sigma = self.add_weight(shape=(), initializer="zeros", name="sigma")

    def call(self, x, training=False):
        batch = ops.shape(x)[0]
        height, width, channels = x.shape[1], x.shape[2], x.shape[3]
        positions, pooled = height * width, (height // 2) * (width // 2)
        theta = ops.reshape(self.theta(x, training=training), (batch, positions, -1))
        phi = ops.max_pool(self.phi(x, training=training), 2, 2)
        phi = ops.reshape(phi, (batch, pooled, -1))
        g = ops.reshape(ops.max_pool(self.g(x, training=training), 2, 2), (batch, pooled, -1))
        attention = ops.softmax(ops.matmul(theta, ops.transpose(phi, (0, 2, 1))), axis=-1)
        attended = ops.reshape(ops.matmul(attention, g), (batch, height, width, channels // 2))
        return x + self.sigma * self.out(attended, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "spectral": self.spectral}


@keras.saving.register_keras_serializable(package="zoo")
class ProjectionOutput(keras.layers.Layer):
    """The projection discriminator's score (Miyato & Koyama 2018; SAGAN, MGM):
    D(h, c) = w·h + b + ⟨e_c, h⟩, for pooled features h [B, D] and labels c [B], with
    the linear layer and the class embedding e spectrally normalised when `spectral`.
    Returns [B, 1].

    Args:
        num_classes: int >= 1.
        spectral: bool. Defaults to True.
    """

    def __init__(self, num_classes, spectral=True, **kwargs):
        super().__init__(**kwargs)
        checks.int_at_least(num_classes, 1, "num_classes", "ProjectionOutput")
        self.num_classes, self.spectral = num_classes, bool(spectral)

    def build(self, input_shape):
        h_shape, _ = input_shape
        self.linear = keras.layers.Dense(1, name="linear", kernel_initializer="glorot_uniform")
        # the class embedding as a bias-free dense layer on one-hot labels (the same
        # [classes, D] matrix and spectral norm; Keras' wrapper casts an Embedding's
        # output to its int inputs' dtype)
        self.embedding = keras.layers.Dense(
            h_shape[-1], use_bias=False, name="embedding", kernel_initializer="glorot_uniform"
        )
        if self.spectral:
            self.linear, self.embedding = spectral(self.linear), spectral(self.embedding)
        self.linear.build(h_shape)
        self.embedding.build((h_shape[0], self.num_classes))

    def call(self, inputs, training=False):
        h, labels = inputs
        labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
        one_hot = ops.one_hot(labels, self.num_classes, dtype=h.dtype)
        projected = ops.sum(self.embedding(one_hot, training=training) * h, axis=-1, keepdims=True)
        return self.linear(h, training=training) + projected

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "spectral": self.spectral,
        }
