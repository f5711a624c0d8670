"""The BatchNormalization of the heads' blocks, one switch for all of them."""

import gin
import keras


@gin.configurable(module="zoo.layers", denylist=["name"])
def batch_norm(name: str, synchronized: bool = False) -> keras.layers.BatchNormalization:
    """A BatchNormalization layer for a head's block (up-projection, residual units,
    projectors).

    Args:
        name: str. The layer's name.
        synchronized: bool. Statistics over the global batch of every replica instead of
            each replica's own (Keras' `synchronized=True`). With a "sync_batch" trunk
            (`zoo.trunks.resnet.norm`) it makes a multi-replica step the one-process
            step on the same global batch; on one device it computes the variance as
            E[x²] − E[x]² instead of TensorFlow's two-pass moments. Bind it with
            `zoo.layers.batch_norm.synchronized = True`. Defaults to False: each replica
            normalises with its own batch, as the papers' multi-GPU runs did.
    """
    return keras.layers.BatchNormalization(synchronized=synchronized, name=name)
