"""Loading an exported zoo trunk (SavedModel) as a Keras layer that finetunes with any optimizer."""

import os

import keras
from tensorflow.core.protobuf import saved_model_pb2

from zoo.errors import DataError, MissingFile
from zoo.methods.base import exports_trusted


def signature_input_size(path: str) -> int | tuple | None:
    """The image size an exported trunk's `serving_default` takes, read from
    saved_model.pb without loading variables: S for [B, S, S, 3] images, (H, W) for
    [B, H, W, 3], None when the export takes any size.

    Raises:
        MissingFile: `path` holds no saved_model.pb.
        DataError: the export has no `serving_default` with an `images` input.
    """

    graph = os.path.join(path, "saved_model.pb")
    if not os.path.exists(graph):
        raise MissingFile(f"{path} holds no saved_model.pb: not a SavedModel.")
    model = saved_model_pb2.SavedModel()
    with open(graph, "rb") as f:
        model.ParseFromString(f.read())
    for meta_graph in model.meta_graphs:
        signature = meta_graph.signature_def.get("serving_default")
        if signature is not None and "images" in signature.inputs:
            dims = [d.size for d in signature.inputs["images"].tensor_shape.dim]
            if len(dims) != 4 or dims[1] <= 0 or dims[2] <= 0:
                return None
            return int(dims[1]) if dims[1] == dims[2] else (int(dims[1]), int(dims[2]))
    raise DataError(
        f"{path}: no serving_default signature with an `images` input; export trunks with "
        "zoo-export (without --task)."
    )


@keras.saving.register_keras_serializable(package="zoo")
class ExportedTrunk(keras.layers.TFSMLayer):
    """A trunk written by `export.export_trunk`, callable as a layer and finetunable.

    Calls `serving_default` for inference and the export's `train` endpoint when called
    with training=True (and trainable), so gradients reach every weight and BatchNorm
    statistics update as moving averages inside the SavedModel;
    `Method.precise_batch_norm` measures them through `batch_norm_statistics()`.
    Frozen (trainable=False), it always runs in inference mode.
    Outputs are the export's dict: every endpoint ("/" written "_") and `embedding`.

    Plain `keras.layers.TFSMLayer` keeps TensorFlow's ":0" suffix in the names of the
    weights it re-wraps, and optimizers with slots (Adam, RMSprop) then fail with
    "'..._kernel:0_momentum' is not a valid scope name" (keras PR #20995); this layer
    drops the suffix.

    Args:
        filepath: str. The trunk's SavedModel folder (kept as an absolute path).
        trainable: bool. Finetune the trunk's weights. Defaults to True.
        **kwargs: passed to TFSMLayer (e.g. `name`).
    """

    def __init__(self, filepath, trainable=True, **kwargs):
        filepath = os.path.abspath(filepath)  # its config is read from other folders
        if not os.path.exists(os.path.join(filepath, "saved_model.pb")):
            raise MissingFile(
                f"the exported trunk {filepath} is gone (no saved_model.pb there); a run "
                "finetuned from an export needs it where it was to be rebuilt: put it back."
            )
        kwargs.setdefault("call_endpoint", "serving_default")
        kwargs.setdefault("call_training_endpoint", "train")
        super().__init__(filepath, trainable=trainable, **kwargs)

    def batch_norm_statistics(self) -> list:
        """[(moving_mean, moving_variance)] of each BatchNorm layer in the SavedModel
        (by the names Keras gives them), for `Method.precise_batch_norm`."""
        weights = {w.name: w for w in self.non_trainable_weights}
        return [
            (weights[name], weights[name.removesuffix("mean") + "variance"])
            for name in sorted(weights)
            if name.endswith("moving_mean") and name.removesuffix("mean") + "variance" in weights
        ]

    def call(self, inputs, training=False, **kwargs):
        # frozen (trainable=False): inference mode, as Keras' BatchNormalization is
        return super().call(inputs, training=bool(training) and self.trainable, **kwargs)

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

    @classmethod
    def from_config(cls, config):
        if not exports_trusted():
            return super().from_config(config)  # Keras' own safe-mode rule
        return cls(**config)
