"""Loading an exported zoo trunk (SavedModel) as a Keras layer that finetunes with any optimizer."""

import keras


@keras.saving.register_keras_serializable(package="zoo")
class ExportedTrunk(keras.layers.TFSMLayer):
    """A trunk written by `export.export_trunk`, callable as a layer and finetunable.

    Calls `serving_default` for inference and the export's `train` endpoint when called
    with training=True, so gradients reach every weight and BatchNorm statistics update.
    Outputs are the export's dict: every endpoint ("/" written "_") and `embedding`.

    Plain `keras.layers.TFSMLayer` keeps TensorFlow's ":0" suffix in the names of the
    weights it re-wraps, and optimizers with slots (Adam, RMSprop) then fail with
    "'..._kernel:0_momentum' is not a valid scope name" (keras PR #20995); this layer
    drops the suffix.

    Args:
        filepath: str. The trunk's SavedModel folder.
        trainable: bool. Finetune the trunk's weights. Defaults to True.
        **kwargs: passed to TFSMLayer (e.g. `name`).
    """

    def __init__(self, filepath, trainable=True, **kwargs):
        kwargs.setdefault("call_endpoint", "serving_default")
        kwargs.setdefault("call_training_endpoint", "train")
        super().__init__(filepath, trainable=trainable, **kwargs)

    def _add_existing_weight(self, weight):
        # TFSMLayer's own hook for re-wrapping the SavedModel's weights, with the
        # ":0" suffix removed from the name.
        variable = keras.Variable(
            initializer=weight,
            trainable=weight.trainable,
            dtype=weight.dtype,
            shape=weight.shape,
            name=weight.name.split(":")[0].replace("/", "_"),
        )
        self._track_variable(variable)
