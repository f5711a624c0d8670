"""SavedModel export: trunks for transfer, task models for TF Serving.

Exported models load with TensorFlow alone (`tf.saved_model.load`, TF Serving,
`keras.layers.TFSMLayer`), never with `zoo`. Harmonization happens inside the graph,
so clients send plain RGB.

Every signature checks its request before any computation and answers a malformed one
with InvalidArgument naming the expected shape, so that no request can abort a model
server (a convolution fed a tensor of the wrong rank aborts the process):

* float images: rank 4, 3 channels, the model's height and width (any height and width
  >= 1 for a trunk built without a fixed size);
* an empty batch gives empty outputs of the right shapes;
* `serve_bytes`: a [B] string tensor; every file must start like a JPEG, PNG, GIF or
  BMP file, otherwise the whole request fails naming the positions of the others (the
  request is one unit: a partial answer would shift the outputs of the images after a
  bad one). A file whose header announces more than the export's `max_pixels` (40
  million by default) fails the request the same way, before anything is decoded. A
  file with a valid header but damaged content fails the request with the decoder's
  message.

Exports are written to a temporary folder beside the target and renamed into place
(`zoo.files.write_folder`): a folder at the target is always a complete export.
"""

import json
import os

import tensorflow as tf

from zoo import checks, files
from zoo.data.harmonize import SERVING_HARMONIZERS
from zoo.data.sources import resize_and_center_crop
from zoo.errors import ExistingFile, UserError


def _serving_harmonizer(name):
    if name not in SERVING_HARMONIZERS:
        raise UserError(
            f"Exported graphs apply a deterministic harmonizer, one of {SERVING_HARMONIZERS}. "
            f"Received: {name!r} (a training-time augmentation; export with 'identity')."
        )
    if name == "identity":
        return lambda images: images
    from zoo.data.harmonize import harmonizer

    return harmonizer(name)


def _image_spec(input_shape, name="images"):
    return tf.TensorSpec([None, input_shape[1], input_shape[2], 3], tf.float32, name=name)


def _checked(images, input_shape):
    """`images` once its shape is known to fit: InvalidArgument, naming the expected
    shape, for a wrong rank, size or channel count."""
    height, width = input_shape[1], input_shape[2]
    images = tf.ensure_shape(images, [None, height, width, 3])
    if height is None or width is None:
        size = tf.shape(images)[1:3]
        check = tf.debugging.assert_greater_equal(
            tf.reduce_min(size),
            1,
            message="images must be [batch, height, width, 3] with height and width >= 1",
        )
        # Ordered before the model: otherwise a kernel may fail first on the empty map.
        with tf.control_dependencies([check]):
            images = tf.identity(images)
    return images


def _batched(images, run):
    """`run(images)`, for an empty batch too: a batch of one zero image is run, and every
    output cut back to 0 rows (some kernels fail on an empty batch)."""
    count = tf.shape(images)[0]
    one = tf.zeros(tf.concat([[1], tf.shape(images)[1:]], axis=0), images.dtype)
    outputs = run(tf.cond(count > 0, lambda: images, lambda: one))
    return tf.nest.map_structure(lambda t: t[:count], outputs)


# The first bytes of the files `serve_bytes` decodes.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


def _image_files(encoded):
    """`encoded` once every element starts like a JPEG, PNG, GIF or BMP file."""
    encoded = tf.ensure_shape(encoded, [None])
    known = tf.zeros(tf.shape(encoded), tf.bool)
    for signature in _SIGNATURES:
        start = tf.strings.substr(encoded, 0, len(signature))
        known = tf.logical_or(known, tf.equal(start, signature))
    bad = tf.reshape(tf.where(tf.logical_not(known)), [-1])
    check = tf.debugging.Assert(
        tf.size(bad) == 0,
        ["encoded: the files at these positions are not JPEG, PNG, GIF or BMP:", bad],
        summarize=20,
    )
    with tf.control_dependencies([check]):
        return tf.identity(encoded)


# `serve_bytes` refuses files whose header announces more pixels than this (a 40 MP
# photograph decodes to 120 MB of bytes and 480 MB of floats; a small PNG can announce
# 12,000 x 12,000 and take gigabytes).
MAX_PIXELS = 40_000_000


def _unsigned(data, start, size, big_endian=False):
    """The unsigned integer in `data[start : start + size]` (int64 bytes)."""
    digits = data[start : start + size]
    if big_endian:
        digits = tf.reverse(digits, [0])
    return tf.reduce_sum(digits * tf.constant([256**i for i in range(size)], tf.int64))


def _signed32(data, start):
    value = _unsigned(data, start, 4)
    return tf.where(value >= 2**31, value - 2**32, value)


def _gif_pixels(data, length):
    """Pixels of a GIF as TensorFlow's decoder holds them: every frame's rectangle (it
    decodes every frame, whatever `expand_animations`), or the logical screen when that
    is larger; read by walking the blocks (extensions and image descriptors, and their
    data sub-blocks)."""
    screen = _unsigned(data, 6, 2) * _unsigned(data, 8, 2)

    def table(flags):  # bytes of the colour table a packed-fields byte announces
        size = 3 * tf.bitwise.left_shift(tf.constant(2, tf.int64), tf.bitwise.bitwise_and(flags, 7))
        return tf.where(tf.bitwise.bitwise_and(flags, 0x80) > 0, size, tf.zeros_like(size))

    def step(position, in_blocks, pixels, done):
        byte = data[position]
        frame = tf.logical_and(~in_blocks, byte == 0x2C)  # image descriptor, 10 bytes
        extension = tf.logical_and(~in_blocks, byte == 0x21)  # introducer and label
        after_frame = position + 10 + table(data[position + 9]) + 1  # + LZW code size
        size = _unsigned(data, position + 5, 2) * _unsigned(data, position + 7, 2)
        # in data sub-blocks: a size byte and its bytes; a size of 0 ends them
        position = tf.where(
            in_blocks,
            position + 1 + byte,
            tf.where(frame, after_frame, tf.where(extension, position + 2, position)),
        )
        return (
            position,
            tf.where(in_blocks, byte > 0, frame | extension),
            pixels + tf.where(frame, size, tf.constant(0, tf.int64)),
            ~in_blocks & ~frame & ~extension,  # the trailer, or not a block at all
        )

    start = 13 + table(data[10])
    _, _, pixels, _ = tf.while_loop(
        lambda position, in_blocks, pixels, done: tf.logical_and(position < length, ~done),
        step,
        [start, tf.constant(False), tf.constant(0, tf.int64), tf.constant(False)],
    )
    return tf.maximum(screen, pixels)


def _pixels(encoded):
    """Pixels an image file announces in its header (JPEG, PNG, GIF or BMP), read without
    decoding it; 0 for a header too short to say (the decoder then refuses the file)."""
    length = tf.cast(tf.strings.length(encoded), tf.int64)
    # padded so that every header field of a short file reads as zeros
    data = tf.cast(tf.io.decode_raw(tf.strings.join([encoded, b"\0" * 32]), tf.uint8), tf.int64)

    def starts(signature):
        return tf.equal(tf.strings.substr(encoded, 0, len(signature)), signature)

    def jpeg():
        return tf.reduce_prod(tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.int64))

    def png():  # IHDR: width, height as big-endian 32-bit integers
        return _unsigned(data, 16, 4, True) * _unsigned(data, 20, 4, True)

    def bmp():  # as TensorFlow's decoder reads them: signed 32-bit, height < 0 top-down
        return tf.abs(_signed32(data, 18)) * tf.abs(_signed32(data, 22))

    return tf.case(
        [
            (starts(_SIGNATURES[0]), jpeg),
            (starts(_SIGNATURES[1]), png),
            (starts(b"GIF"), lambda: _gif_pixels(data, length)),
        ],
        default=bmp,
    )


def _within(encoded, max_pixels):
    """`encoded` once no file announces more than `max_pixels` pixels."""
    pixels = tf.map_fn(_pixels, encoded, fn_output_signature=tf.int64)
    large = tf.reshape(tf.where(pixels > max_pixels), [-1])
    check = tf.debugging.Assert(
        tf.size(large) == 0,
        [
            f"encoded: the images at these positions have more than {max_pixels} pixels "
            "(max_pixels of this export):",
            large,
            "pixels:",
            tf.gather(pixels, large),
        ],
        summarize=20,
    )
    with tf.control_dependencies([check]):
        return tf.identity(encoded)


EXPORT_INFO = "zoo_export.json"  # what an export is, beside its saved_model.pb


def endpoint_key(name):
    """Signature output key of a trunk endpoint: 'block3/unit_5' -> 'block3_unit_5'."""
    return name.replace("/", "_")


def _save(folder, model, endpoints):
    """Writes `endpoints` ({name: tf.function with an input signature}) as the
    SavedModel's signatures and attributes, with `model`'s variables: what
    keras.export.ExportArchive writes (TFSMLayer and TF Serving read it alike), without
    its walk over the model's layers looking for lookup tables, which traces the model
    again (the zoo's models hold none; the export takes about half the time)."""
    root = tf.__internal__.tracking.AutoTrackable()
    root.variables = list(model.variables)
    root.trainable_variables = list(model.trainable_variables)
    root.non_trainable_variables = list(model.non_trainable_variables)
    for name, fn in endpoints.items():
        setattr(root, name, fn)
    signatures = {name: fn.get_concrete_function() for name, fn in endpoints.items()}
    tf.saved_model.save(root, folder, signatures=signatures)


def export_trunk(trunk, path: str, harmonizer: str = "identity", overwrite: bool = False) -> str:
    """Writes a trunk as a SavedModel with `serving_default` and `train` endpoints.

    Both take float RGB images in [0, 1], `images` [B, H, W, 3] (H and W as the trunk's
    input, None for any size), and return every endpoint (keys with "/" replaced by
    "_") plus `embedding`, the global average of the last endpoint. `train` runs the
    trunk with training=True, so that `keras.layers.TFSMLayer(path,
    call_endpoint="serving_default", call_training_endpoint="train", trainable=True)`
    finetunes it (gradients reach every weight and BatchNorm statistics update).
    `zoo_export.json` beside it lists the endpoints in the trunk's order (the
    signatures' outputs are a map) and its input shape.

    Args:
        trunk: keras.Model. A zoo trunk (dict of endpoints).
        path: str. Output folder.
        harmonizer: str. "identity", "lab_l3" or "lab", applied inside the graph.
            Defaults to "identity".
        overwrite: bool. Replace an existing export. Defaults to False.
    """
    harmonize = _serving_harmonizer(harmonizer)
    last = list(trunk.output)[-1]
    input_shape = trunk.input.shape
    spec = _image_spec(input_shape)

    def run(images, training):
        def forward(images):
            outputs = trunk(harmonize(images), training=training)
            # float32 at the signature, whatever precision the trunk computes in
            outputs = {k: tf.cast(v, tf.float32) for k, v in outputs.items()}
            named = {endpoint_key(k): v for k, v in outputs.items()}
            named["embedding"] = tf.reduce_mean(outputs[last], axis=[1, 2])
            return named

        return _batched(_checked(images, input_shape), forward)

    def write(folder):
        _save(
            folder,
            trunk,
            {
                "serving_default": tf.function(
                    lambda images: run(images, False), input_signature=[spec]
                ),
                "train": tf.function(lambda images: run(images, True), input_signature=[spec]),
            },
        )
        # signature outputs are a map; the trunk's endpoints in order, for loaders
        info = {"kind": "trunk", "endpoints": list(trunk.output), "input_shape": input_shape[1:]}
        files.write_json(os.path.join(folder, EXPORT_INFO), info)

    return files.write_folder(path, write, overwrite)


def _class_names(task):
    """The class names of a task's labels (empty when its source names none), one for
    each of its `classes` (unnamed ones by their index)."""
    key = getattr(task, "label_key", None)
    names = list(task.label_names.get(key, ())) if key else []
    if names:
        names += [str(i) for i in range(len(names), getattr(task, "classes", 0) or 0)]
    return names


def next_version(base_dir: str, name: str) -> int:
    """1 + the largest version folder of `<base_dir>/<name>` (1 for a new model)."""
    folder = os.path.join(base_dir, name)
    versions = [int(v) for v in os.listdir(folder) if v.isdigit()] if os.path.isdir(folder) else []
    return max(versions, default=0) + 1


def _check_same_model(base_dir, name, info):
    """Refuses to add a version of another kind of model under an existing name."""
    folder = os.path.join(base_dir, name)
    if not os.path.isdir(folder):
        return
    versions = sorted((int(v) for v in os.listdir(folder) if v.isdigit()), reverse=True)
    for version in versions:
        path = os.path.join(folder, str(version), EXPORT_INFO)
        if not os.path.exists(path):
            continue
        with open(path) as f:
            old = json.load(f)
        differs = [
            k for k in ("task", "input_size", "outputs", "class_names") if old.get(k) != info[k]
        ]
        if differs:
            raise ExistingFile(
                f"{folder} holds a different model under the name {name!r} (version {version}: "
                + ", ".join(f"{k} {old.get(k)!r}, not {info[k]!r}" for k in differs)
                + "); give another name."
            )
        return


# In a model base folder: which version of each model serves as "stable" and "canary",
# and the folder a model server sees the base as (a container mount), if not this one.
SERVING_STATE = "serving.json"
WARMUP = os.path.join("assets.extra", "tf_serving_warmup_requests")


def _serving_state(base_dir):
    path = os.path.join(base_dir, SERVING_STATE)
    if not os.path.exists(path):
        return {"root": None, "models": {}}
    with open(path) as f:
        return json.load(f)


def _versions(folder):
    return sorted(int(v) for v in os.listdir(folder) if v.isdigit())


def set_serving(
    base_dir: str, name: str | None = None, stable: int | None = None, root: str | None = None
) -> str:
    """Chooses what TF Serving serves from `base_dir` and rewrites its `models.config`.

    Args:
        base_dir: str. The model base folder.
        name: str or None. A model of the base; with `stable`.
        stable: int or None. The version of `name` labelled "stable" (the one served to
            requests without a version); the newest other version, if newer, stays
            "canary".
        root: str or None. The folder the model server sees `base_dir` as (e.g.
            "/models" for a container mounting it there): `base_path` of every model
            becomes `<root>/<name>`. Defaults to the one set before, else `base_dir`
            itself (absolute).

    Returns:
        The path of `models.config`.
    """
    state = _serving_state(base_dir)
    if root is not None:
        state["root"] = root
    if name is not None:
        folder = os.path.join(base_dir, name)
        versions = _versions(folder) if os.path.isdir(folder) else []
        if stable not in versions:
            raise UserError(
                f"set_serving: {name!r} has versions {versions} in {base_dir}. Received: "
                f"stable={stable!r}"
            )
        state["models"][name] = {"stable": stable}
    files.write_json(os.path.join(base_dir, SERVING_STATE), state)
    return write_models_config(base_dir)


def write_models_config(base_dir: str) -> str:
    """Writes `<base_dir>/models.config` (TF Serving's model config, text format) listing
    every model folder of the base (a folder holding numbered versions).

    Each model serves its "stable" version (the first exported, or the one chosen with
    `set_serving`) and, when a newer version exists, the newest as "canary"
    (`model_version_policy { specific { ... } }` and `version_labels`): a new finetune is
    loaded beside the served one, never in its place, until it is made stable.
    """
    state = _serving_state(base_dir)
    root = state.get("root")
    entries = []
    for name in sorted(os.listdir(base_dir)):
        folder = os.path.join(base_dir, name)
        if not (os.path.isdir(folder) and any(v.isdigit() for v in os.listdir(folder))):
            continue
        versions = _versions(folder)
        stable = state["models"].get(name, {}).get("stable")
        stable = stable if stable in versions else versions[0]
        labels = {"stable": stable}
        if versions[-1] > stable:
            labels["canary"] = versions[-1]
        served = "".join(f"        versions: {v}\n" for v in sorted(set(labels.values())))
        label_text = "".join(
            f'    version_labels {{ key: "{k}" value: {v} }}\n' for k, v in labels.items()
        )
        base_path = f"{root.rstrip('/')}/{name}" if root else os.path.abspath(folder)
        entries.append(
            "  config {\n"
            f'    name: "{name}"\n'
            f'    base_path: "{base_path}"\n'
            '    model_platform: "tensorflow"\n'
            "    model_version_policy {\n      specific {\n"
            + served
            + "      }\n    }\n"
            + label_text
            + "  }\n"
        )
    text = "model_config_list {\n" + "".join(entries) + "}\n"
    return files.write_text(os.path.join(base_dir, "models.config"), text)


def _varint(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number, payload):
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def warmup_record(model_name, signature, inputs):
    """A serialized `tensorflow.serving.PredictionLog` holding one PredictRequest
    (`predict_log` 6 -> `request` 1 -> `model_spec` 1 {name 1, signature_name 3},
    `inputs` 2 {key 1, TensorProto 2}), the record format TF Serving replays from
    `assets.extra/tf_serving_warmup_requests` when it loads a version."""
    spec = _field(1, model_name.encode()) + _field(3, signature.encode())
    request = _field(1, spec)
    for key, value in inputs.items():
        tensor = tf.make_tensor_proto(value).SerializeToString()
        request += _field(2, _field(1, key.encode()) + _field(2, tensor))
    return _field(6, _field(1, request))


def _px(size) -> str:
    height, width = checks.image_size(size)
    return f"{height}px" if height == width else f"{height}x{width}px"


def _warmup_image(size):
    """A small PNG of a smooth colour ramp (any image warms the graph up)."""
    height, width = checks.image_size(size)
    ramps = tf.meshgrid(tf.linspace(0.0, 1.0, width), tf.linspace(0.0, 1.0, height))
    image = tf.stack(ramps + [tf.fill([height, width], 0.5)], axis=-1)
    return image, tf.io.encode_png(tf.image.convert_image_dtype(image, tf.uint8)).numpy()


def _write_warmup(folder, name, size):
    image, png = _warmup_image(size)
    requests = [
        warmup_record(name, "serving_default", {"images": image[tf.newaxis].numpy()}),
        warmup_record(name, "serve_bytes", {"encoded": tf.constant([png])}),
    ]
    os.makedirs(os.path.join(folder, "assets.extra"), exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(folder, WARMUP)) as writer:
        for record in requests:
            writer.write(record)


def export_model(
    model,
    task: str,
    base_dir: str,
    name: str,
    version: int | None = None,
    harmonizer: str | None = None,
    overwrite: bool = False,
    max_pixels: int | None = None,
) -> str:
    """Writes one task of a trained MultiTask (or Transfer) method for TF Serving:
    `<base>/<name>/<version>/`, and lists it in `<base>/models.config`.

    Signatures:
      * `serving_default`: `images` float32 [B, S, S, 3] RGB in [0, 1];
      * `serve_bytes`: `encoded` string [B] of JPEG, PNG, GIF or BMP files of any size
        (grayscale and RGBA too), decoded, converted to [0, 1], the shorter side resized
        to S and the centre S x S square kept inside the graph: the view that training
        on an image folder (`zoo.data.ImageFolder(size=S)`) had of the same file. A
        file whose header announces more than `max_pixels` pixels (for a GIF, all
        its frames together) fails the request before anything is decoded,
        naming its position.
    Both return the task's named outputs (e.g. `depth`, `normals`, `probabilities` and
    `classes`, `contour_probability`) at the input resolution (a coarse head's maps are
    resized bilinearly), and for a task whose source names its classes `class_names`
    (string [B, C], the names in the order of `probabilities`) and, for a class per
    image, `label` (the name of the most likely class, string [B]). `zoo_export.json`
    beside the graph records the task, input size, outputs and class names, and
    `assets.extra/tf_serving_warmup_requests` holds one request of each signature, which
    TF Serving replays before it serves the version (`warmup_record`). The base's
    `models.config` serves each model's "stable" version and its newest as "canary"
    (`write_models_config`, `set_serving`).

    Args:
        model: zoo.methods.MultiTask or Transfer.
        task: str. Task name.
        base_dir: str. Model base folder of TF Serving.
        name: str. Model name.
        version: int or None. Version folder. Defaults to the next free one.
        harmonizer: str or None. "identity", "lab_l3" or "lab". Defaults to the task's.
        overwrite: bool. Replace an existing version. Defaults to False.
        max_pixels: int or None. Largest image `serve_bytes` decodes, in pixels
            (recorded in `zoo_export.json`). Defaults to MAX_PIXELS (40 million).

    Returns:
        The version folder.
    """
    if task not in model.tasks:
        raise UserError(f"export_model: unknown task {task!r}; tasks: {sorted(model.tasks)}")
    if task not in model.image_tasks():
        raise UserError(
            f"export_model: task {task!r} does not read whole {_px(model.input_size)} images (it "
            f"takes {model.task_model(task).input.shape[1:]}); serve an image task "
            f"{model.image_tasks()} or export the trunk."
        )
    if not name or os.sep in name or name.startswith("."):
        raise UserError(f"export_model: `name` must be a plain folder name. Received: {name!r}")
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    checks.int_at_least(max_pixels, 1, "max_pixels")
    if version is None:
        version = next_version(base_dir, name)
    checks.int_at_least(version, 1, "version")
    path = os.path.join(base_dir, name, str(version))
    harmonize = _serving_harmonizer(harmonizer or model.serving_harmonizer(task))
    network = model.task_model(task)
    size = model.input_size
    height, width = checks.image_size(size)
    task_object = model.tasks[task]
    names = _class_names(task_object)
    input_shape = (None, height, width, 3)

    def outputs_of(images):
        raw = network(harmonize(images), training=False)
        if raw.shape.rank == 4 and tuple(raw.shape[1:3]) != (height, width):
            raw = tf.image.resize(raw, [height, width], method="bilinear")
        out = dict(task_object.serving_outputs(raw))
        if names:
            table = tf.constant(names)
            if raw.shape.rank == 2:  # a class per image: its name too
                out["label"] = tf.gather(table, tf.argmax(raw, axis=-1))
            out["class_names"] = tf.tile(table[tf.newaxis], [tf.shape(raw)[0], 1])
        return out

    def predict(images):
        return _batched(_checked(images, input_shape), outputs_of)

    def decode(encoded):
        # the training pipeline's rule (zoo.data.ImageFolder with `size`): the shorter
        # side resized to S (antialiased), the centre S x S square kept (for H x W: the
        # smallest resize covering it, its centre kept)
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image = tf.image.convert_image_dtype(image, tf.float32)
        image.set_shape([None, None, 3])
        return resize_and_center_crop(image, size)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="encoded")])
    def serve_bytes(encoded):
        images = tf.map_fn(
            decode,
            _within(_image_files(encoded), max_pixels),
            fn_output_signature=tf.TensorSpec([height, width, 3]),
        )
        return predict(images)

    outputs = sorted(outputs_of(tf.zeros((1, height, width, 3))))
    info = {
        "task": task,
        "input_size": size if height == width else [height, width],  # as JSON keeps it
        "outputs": outputs,
        "class_names": names,
        "max_pixels": max_pixels,
    }
    _check_same_model(base_dir, name, info)

    def write(folder):
        serving = tf.function(predict, input_signature=[_image_spec(input_shape)])
        _save(folder, network, {"serving_default": serving, "serve_bytes": serve_bytes})
        files.write_json(os.path.join(folder, EXPORT_INFO), info)
        _write_warmup(folder, name, size)

    path = files.write_folder(path, write, overwrite)
    write_models_config(base_dir)
    return path
