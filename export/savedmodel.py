"""SavedModel export: trunks for transfer, task models for TF Serving.

Exported models load with TensorFlow alone (`tf.saved_model.load`, TF Serving,
`keras.layers.TFSMLayer`), never with `zoo`. Harmonization happens inside the graph,
so clients send plain RGB.
"""

import os

import keras
import tensorflow as tf

from zoo.errors import ExistingFile, UserError

# Deterministic harmonizers that a serving graph can apply (random ones are training
# augmentations; served models see the plain image).
SERVING_HARMONIZERS = ("identity", "lab_l3")


def _serving_harmonizer(name):
    if name not in SERVING_HARMONIZERS:
        raise UserError(
            f"Exported graphs apply a deterministic harmonizer, one of {SERVING_HARMONIZERS}. "
            f"Received: {name!r} (a training-time augmentation; export with 'identity')."
        )
    if name == "identity":
        return lambda images: images
    from zoo.data.harmonize import lab_l3

    return lambda images: lab_l3(images)


def _check_target(path, overwrite):
    if os.path.exists(path) and os.listdir(path) and not overwrite:
        raise ExistingFile(
            f"{path} already holds an export; pass overwrite=True (--overwrite) to replace it."
        )


def _image_spec(input_shape, name="images"):
    return tf.TensorSpec([None, input_shape[1], input_shape[2], 3], tf.float32, name=name)


def endpoint_key(name):
    """Signature output key of a trunk endpoint: 'block3/unit_5' -> 'block3_unit_5'."""
    return name.replace("/", "_")


def export_trunk(trunk, path: str, harmonizer: str = "identity", overwrite: bool = False) -> str:
    """Writes a trunk as a SavedModel with `serving_default` and `train` endpoints.

    Both take float RGB images in [0, 1], `images` [B, H, W, 3] (H and W as the trunk's
    input, None for any size), and return every endpoint (keys with "/" replaced by
    "_") plus `embedding`, the global average of the last endpoint. `train` runs the
    trunk with training=True, so that `keras.layers.TFSMLayer(path,
    call_endpoint="serving_default", call_training_endpoint="train", trainable=True)`
    finetunes it (gradients reach every weight and BatchNorm statistics update).

    Args:
        trunk: keras.Model. A zoo trunk (dict of endpoints).
        path: str. Output folder.
        harmonizer: str. "identity" or "lab_l3", applied inside the graph.
            Defaults to "identity".
        overwrite: bool. Replace an existing export. Defaults to False.
    """
    _check_target(path, overwrite)
    harmonize = _serving_harmonizer(harmonizer)
    last = list(trunk.output)[-1]
    spec = _image_spec(trunk.input.shape)

    def run(images, training):
        outputs = trunk(harmonize(images), training=training)
        named = {endpoint_key(k): v for k, v in outputs.items()}
        named["embedding"] = tf.reduce_mean(outputs[last], axis=[1, 2])
        return named

    archive = keras.export.ExportArchive()
    archive.track(trunk)
    archive.add_endpoint(
        "serving_default", tf.function(lambda images: run(images, False), input_signature=[spec])
    )
    archive.add_endpoint(
        "train", tf.function(lambda images: run(images, True), input_signature=[spec])
    )
    archive.write_out(path, verbose=False)
    return path


def export_model(
    model,
    task: str,
    base_dir: str,
    name: str,
    version: int = 1,
    harmonizer: str = "identity",
    overwrite: bool = False,
) -> str:
    """Writes one task of a trained MultiTask method for TF Serving: `<base>/<name>/<version>/`.

    Signatures:
      * `serving_default`: `images` float32 [B, S, S, 3] RGB in [0, 1];
      * `serve_bytes`: `encoded` string [B] of JPEG or PNG files, decoded, converted to
        [0, 1] and resized to S x S inside the graph.
    Both return the task's named outputs (e.g. `depth`, `normals`, `probabilities` and
    `classes`, `contour_probability`).

    Args:
        model: zoo.methods.MultiTask.
        task: str. Task name.
        base_dir: str. Model base folder of TF Serving.
        name: str. Model name.
        version: int. Version folder. Defaults to 1.
        harmonizer: str. "identity" or "lab_l3". Defaults to "identity".
        overwrite: bool. Replace an existing version. Defaults to False.

    Returns:
        The version folder.
    """
    if task not in model.tasks:
        raise UserError(f"export_model: unknown task {task!r}; tasks: {sorted(model.tasks)}")
    if task not in model.image_tasks():
        raise UserError(
            f"export_model: task {task!r} does not read whole {model.input_size}px images (it "
            f"takes {model.task_model(task).input.shape[1:]}); serve an image task "
            f"{model.image_tasks()} or export the trunk."
        )
    if not (isinstance(version, int) and version >= 1):
        raise UserError(f"`version` must be an int >= 1. Received: {version!r}")
    path = os.path.join(base_dir, name, str(version))
    _check_target(path, overwrite)
    harmonize = _serving_harmonizer(harmonizer)
    network = model.task_model(task)
    size = model.input_size
    task_object = model.tasks[task]

    def predict(images):
        return task_object.serving_outputs(network(harmonize(images), training=False))

    def decode(encoded):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image = tf.image.convert_image_dtype(image, tf.float32)
        image.set_shape([None, None, 3])
        return tf.image.resize(image, [size, size], antialias=True)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="encoded")])
    def serve_bytes(encoded):
        images = tf.map_fn(decode, encoded, fn_output_signature=tf.TensorSpec([size, size, 3]))
        return predict(images)

    archive = keras.export.ExportArchive()
    archive.track(network)
    archive.add_endpoint(
        "serving_default",
        tf.function(predict, input_signature=[_image_spec((None, size, size, 3))]),
    )
    archive.add_endpoint("serve_bytes", serve_bytes)
    archive.write_out(path, verbose=False)
    return path
