"""A method of two players, Algorithm-1 style: g maps x to features that d reads; g fits
d(g(x)) to y with d fixed, then d takes `d_steps` steps fitting d(g(x)) to 2y with g
fixed. The guide "Methods, and adding one" shows this file; tests/methods/test_players.py
checks it against a hand-written loop and under MirroredStrategy.

    python examples/two_players.py
"""

import keras
import numpy as np
import tensorflow as tf

import zoo  # noqa: F401  (selects the TensorFlow backend of Keras)
from zoo.methods import Method, Phase


class TwoPlayers(Method):
    """g maps x to features that d reads; g fits d(g(x)) to y, then d takes k steps."""

    def __init__(self, d_steps=2, **kwargs):
        super().__init__(**kwargs)
        self.d_steps = d_steps
        self.g, self.d = keras.layers.Dense(4, name="g"), keras.layers.Dense(1, name="d")
        self.g.build((None, 3))
        self.d.build((None, 4))
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.built = True

    @property
    def players(self):
        return ("g", "d")

    def variables_of(self, player):  # disjoint, checked by compile()
        return {"g": self.g.trainable_variables, "d": self.d.trainable_variables}[player]

    def call(self, x):
        return self.d(self.g(x))

    def g_loss(self, data):
        x, y = data
        return tf.nn.compute_average_loss(tf.reduce_sum((self.d(self.g(x)) - y) ** 2, -1))

    def d_loss(self, data):
        x, y = data
        fake = tf.stop_gradient(self.g(x))
        return tf.nn.compute_average_loss(tf.reduce_sum((self.d(fake) - 2 * y) ** 2, -1))

    def train_step(self, data):
        last = self.alternate(
            data, [Phase("g", self.g_loss), Phase("d", self.d_loss, steps=self.d_steps)]
        )
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self.g_loss_tracker.update_state(last["g"] * replicas)
        self.d_loss_tracker.update_state(last["d"] * replicas)
        self.after_step()  # EMA copies, queues: nothing here
        return {m.name: m.result() for m in self.metrics}

    @property
    def metrics(self):
        return [self.g_loss_tracker, self.d_loss_tracker]

    def get_config(self):
        return {**super().get_config(), "d_steps": self.d_steps}


def main():
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, x[:, :1])).batch(16).repeat()
    with tf.distribute.get_strategy().scope():  # or a MirroredStrategy over the GPUs
        method = TwoPlayers()
        method.compile({"g": keras.optimizers.Adam(1e-3), "d": keras.optimizers.SGD(0.1)})
    return method.fit(data, steps_per_epoch=4, epochs=3)  # logs g_loss and d_loss


if __name__ == "__main__":
    main()
