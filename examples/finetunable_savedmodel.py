"""Finetune an exported zoo trunk in a process without zoo. Plain `keras.layers.TFSMLayer`
finetunes only with slot-free SGD: with Adam, RMSprop or SGD with momentum, Keras 3.15
fails with `'..._kernel:0_momentum' is not a valid scope name` (the re-wrapped weights
keep TensorFlow's ":0"; keras PR #20995). This layer drops the suffix.
tests/export/test_savedmodel.py finetunes an export with it in a TensorFlow-only
process, with Adam and with SGD with momentum.
"""

import keras


class FinetunableSavedModel(keras.layers.TFSMLayer):
    def __init__(self, filepath, trainable=True, **kwargs):
        kwargs.setdefault("call_endpoint", "serving_default")
        kwargs.setdefault("call_training_endpoint", "train")
        super().__init__(filepath, trainable=trainable, **kwargs)

    def _add_existing_weight(self, weight):  # TFSMLayer's hook, names without ":0"
        name = weight.name.split(":")[0].replace("/", "_")
        self._track_variable(keras.Variable(weight, trainable=weight.trainable, name=name))
