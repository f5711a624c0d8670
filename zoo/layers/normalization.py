"""The BatchNormalization of the heads' blocks, one switch for all of them."""

import gin
import keras

from zoo import internals


@gin.configurable(module="zoo.layers", denylist=["name"])
def batch_norm(name: str, synchronized: bool = False) -> keras.layers.BatchNormalization:
    """A BatchNormalization layer for a head's block (up-projection, residual units,
    projectors).

    Args:
        name: str. The layer's name.
        synchronized: bool. Statistics over the global batch of every replica instead of
            each replica's own (`zoo.internals.SyncBatchNormalization`). With a
            "sync_batch" trunk (`zoo.trunks.resnet.norm`) it makes a multi-replica step
            the one-process step on the same global batch. Bind it with
            `zoo.layers.batch_norm.synchronized = True`. Defaults to False: each replica
            normalises with its own batch, as the papers' multi-GPU runs did.
    """
    if synchronized:
        return internals.SyncBatchNormalization(name=name)
    return keras.layers.BatchNormalization(name=name)
