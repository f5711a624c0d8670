"""zoo-finetune on a labelled folder, the export served as TF Serving would, zoo-predict."""

import base64
import io
import json
import os
import subprocess
import sys

import gin
import numpy as np
import processes
import pytest
from helpers import TINY_CONFIG
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = ["astronaut", "chelsea", "coffee", "rocket"]

# Runs in a process where `import zoo` fails: what a model server has.
SERVER = r"""
import base64, json, sys
sys.modules["zoo"] = None  # `import zoo` raises ImportError from here on
try:
    import zoo
    raise SystemExit("zoo is importable")
except ImportError:
    pass
import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.config import model_server_config_pb2

export, config_path, request_path = sys.argv[1:4]
config = model_server_config_pb2.ModelServerConfig()
text_format.Parse(open(config_path).read(), config)
entries = {c.name: (c.base_path, c.model_platform) for c in config.model_config_list.config}
model = tf.saved_model.load(export)
answers = {"config": {k: list(v) for k, v in entries.items()}}

# gRPC: a PredictRequest with the float images, answered from its tensor proto
request = predict_pb2.PredictRequest()
request.model_spec.name = "photos"
request.model_spec.signature_name = "serving_default"
images = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
request = predict_pb2.PredictRequest.FromString(request.SerializeToString())
signature = model.signatures[request.model_spec.signature_name]
out = signature(images=tf.constant(tf.make_ndarray(request.inputs["images"])))
response = predict_pb2.PredictResponse()
for key, value in out.items():
    response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
answers["grpc"] = {
    "probabilities": tf.make_ndarray(response.outputs["probabilities"]).tolist(),
    "label": [b.decode() for b in tf.make_ndarray(response.outputs["label"])],
    "class_names": [b.decode() for b in tf.make_ndarray(response.outputs["class_names"])[0]],
}

# REST: {"instances": [{"b64": ...}]} for serve_bytes (files of any size and kind)
body = json.load(open(request_path))
encoded = [base64.b64decode(instance["b64"]) for instance in body["instances"]]
out = model.signatures["serve_bytes"](encoded=tf.constant(encoded))
answers["rest"] = {
    "predictions": [
        {"label": label.decode(), "probabilities": p.tolist()}
        for label, p in zip(out["label"].numpy(), out["probabilities"].numpy())
    ]
}
try:  # bytes that are not an image: InvalidArgument, the process goes on
    model.signatures["serve_bytes"](encoded=tf.constant([encoded[0], b"not an image"]))
    answers["bad"] = "accepted"
except tf.errors.InvalidArgumentError as error:
    answers["bad"] = error.message
print("ANSWERS " + json.dumps(answers))
"""


def _run(*args, cwd):
    return processes.python(*args, cwd=cwd, env={"PYTHONPATH": ROOT})


def _png(array, mode=None):
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    from export import export_trunk
    from zoo import experiment

    model_dir = str(tmp_path_factory.mktemp("pretrained") / "run")
    gin.clear_config()
    gin.parse_config(TINY_CONFIG)
    experiment.train(model_dir, exporter=export_trunk)  # as zoo-train: its export too
    gin.clear_config()
    return model_dir


def _the_client_example_over_rest_and_grpc(tmp_path, config):
    """examples/serving_client.py, as the guide runs it, against a stand-in server that
    answers TF Serving's REST and gRPC APIs from the exports of models.config."""
    server = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tests", "cli", "serving_standin.py"), config],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    try:
        ready = server.stdout.readline().split()
        assert ready[:1] == ["READY"], server.stderr.read()[-3000:]
        client = os.path.join(ROOT, "examples", "serving_client.py")
        good = ["photos/coffee/000.jpg", "photos/rocket/001.jpg"]
        (tmp_path / "notes.txt").write_text("not an image")
        for api, port in (("rest", ready[1]), ("grpc", ready[2])):
            args = [client, f"--api={api}", f"--server=127.0.0.1:{port}", "--model=photos"]
            said = _run(*args, *good, cwd=tmp_path)
            assert said.returncode == 0, said.stderr[-3000:]
            lines = said.stdout.splitlines()
            assert [line.split(": ")[0] for line in lines] == good
            assert all(line.split(": ")[1] in NAMES for line in lines)
            refused = _run(*args, "--version=1", good[0], "notes.txt", cwd=tmp_path)
            assert refused.returncode != 0
            assert "not JPEG, PNG, GIF or BMP" in refused.stderr
            assert ("400: " if api == "rest" else "INVALID_ARGUMENT") in refused.stderr
    finally:
        server.kill()
        server.communicate()


@pytest.mark.slow
def test_finetune_export_serve_and_predict(pretrained, tmp_path):
    from zoo.data.sources import write_photo_classes

    write_photo_classes(str(tmp_path / "photos"), NAMES, crops_per_photo=6, crop=48)
    command = [
        "-m",
        "zoo.cli.finetune",
        f"--source={pretrained}",
        "--data=photos",
        "--model_dir=ft",
        "--export_base=serving",
        "--name=photos",
        "--holdout=0.25",
        "--gin_bindings=zoo.experiment.train.epochs = 1",
        "--gin_bindings=zoo.experiment.train.batch_size = 8",
    ]
    first = _run(*command, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "classification on photos from" in first.stdout  # what the run is
    assert "classification         accuracy" in first.stdout  # held-out metrics printed
    export = str(tmp_path / "serving" / "photos" / "1")
    assert f"exported to {export}" in first.stdout
    info = json.load(open(os.path.join(export, "zoo_export.json")))
    assert info["class_names"] == NAMES and info["input_size"] == 32  # the run's size
    assert {"label", "class_names", "probabilities", "classes"} <= set(info["outputs"])
    # the same command again: the finished run, already exported, nothing new
    again = _run(*command, cwd=tmp_path)
    assert again.returncode == 0 and "already exported" in again.stdout, again.stderr
    assert sorted(os.listdir(tmp_path / "serving" / "photos")) == ["1"]

    # served in a process without zoo: gRPC protos and the REST JSON body
    rng = np.random.default_rng(1)
    files = [
        open(tmp_path / "photos" / "coffee" / "000.jpg", "rb").read(),  # JPEG, 48 px
        _png(rng.integers(0, 256, (20, 70), dtype=np.uint8)),  # grayscale, another size
        _png(rng.integers(0, 256, (40, 40, 4), dtype=np.uint8), "RGBA"),
    ]
    body = {"instances": [{"b64": base64.b64encode(f).decode()} for f in files]}
    (tmp_path / "request.json").write_text(json.dumps(body))
    (tmp_path / "server.py").write_text(SERVER)
    config = str(tmp_path / "serving" / "models.config")
    served = _run("server.py", export, config, "request.json", cwd=tmp_path)
    assert served.returncode == 0, served.stderr
    answers = json.loads(served.stdout.split("ANSWERS ", 1)[1])
    assert answers["config"] == {"photos": [str(tmp_path / "serving" / "photos"), "tensorflow"]}
    assert answers["grpc"]["class_names"] == NAMES
    probabilities = np.array(answers["grpc"]["probabilities"])
    assert probabilities.shape == (2, 4)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    assert answers["grpc"]["label"] == [NAMES[i] for i in probabilities.argmax(-1)]
    predictions = answers["rest"]["predictions"]
    assert len(predictions) == 3 and all(p["label"] in NAMES for p in predictions)
    assert "not JPEG, PNG, GIF or BMP:] [1]" in answers["bad"]

    _the_client_example_over_rest_and_grpc(tmp_path, config)

    # zoo-predict on two image files
    predicted = _run(
        "-m",
        "zoo.cli.predict",
        "--model=serving/photos",
        "--out=out",
        "photos/coffee/000.jpg",
        "photos/rocket/001.jpg",
        cwd=tmp_path,
    )
    assert predicted.returncode == 0, predicted.stderr
    assert "model photos version 1: 2 images" in predicted.stdout
    rows = json.load(open(tmp_path / "out" / "predictions.json"))
    assert [r["file"] for r in rows] == ["photos/coffee/000.jpg", "photos/rocket/001.jpg"]
    assert all(r["label"] in NAMES and len(r["probabilities"]) == 4 for r in rows)

    # a folder (recursively; other files skipped), and files the model refuses
    from zoo.cli.predict import predict_command
    from zoo.errors import DataError

    folder = tmp_path / "photos"
    (folder / "notes.txt").write_text("not an image")
    said = []
    _, rows = predict_command(export, None, str(tmp_path / "all"), [str(folder)], said.append)
    assert said[0] == f"skipped 1 files that are not images: {folder / 'notes.txt'}"
    assert said[1] == "model photos version 1: 24 images"
    assert len(rows) == 24 and rows[0]["file"] == str(folder / "astronaut" / "000.jpg")
    (folder / "broken.jpg").write_bytes(b"GIF89a but no more")
    (folder / "text.png").write_text("hello")
    with pytest.raises(DataError, match=r"refused 2 of 3 files: .*broken.jpg \(.+\); .*text.png"):
        predict_command(
            export,
            None,
            str(tmp_path / "bad"),
            [
                str(folder / "broken.jpg"),
                str(folder / "coffee" / "000.jpg"),
                str(folder / "text.png"),
            ],
            said.append,
        )


def test_an_export_base_keeps_versions_and_refuses_another_model(pretrained, tmp_path):
    from export import export_model, set_serving
    from zoo.data.sources import ImageFolder, write_photo_classes
    from zoo.evaluation.protocols import load_trunk
    from zoo.methods import Transfer
    from zoo.tasks import Classification

    trunk = load_trunk(pretrained, input_shape=(32, 32, 3))

    def method(names):
        folder = str(tmp_path / "-".join(names))
        write_photo_classes(folder, names, crops_per_photo=2, crop=32)
        source = ImageFolder(folder, labels="folders", size=32)
        task = Classification(source, eval_source=source)
        return Transfer(trunk, task, protocol="linear")

    base = str(tmp_path / "serving")
    two = method(NAMES[:2])
    assert export_model(two, "classification", base, "m").endswith(os.path.join("m", "1"))
    assert export_model(two, "classification", base, "m").endswith(os.path.join("m", "2"))
    with pytest.raises(FileExistsError, match="holds a different model under the name 'm'"):
        export_model(method(NAMES[:3]), "classification", base, "m")
    assert sorted(os.listdir(os.path.join(base, "m"))) == ["1", "2"]

    def served():
        from google.protobuf import text_format
        from tensorflow_serving.config import model_server_config_pb2

        config = model_server_config_pb2.ModelServerConfig()
        text_format.Parse(open(os.path.join(base, "models.config")).read(), config)
        (entry,) = config.model_config_list.config
        labels = dict(entry.version_labels)
        return entry.base_path, list(entry.model_version_policy.specific.versions), labels

    # the first export stays stable, the newer one is loaded beside it as canary
    assert served() == (os.path.join(base, "m"), [1, 2], {"stable": 1, "canary": 2})
    set_serving(base, "m", stable=2, root="/models")
    assert served() == ("/models/m", [2], {"stable": 2})
    assert export_model(two, "classification", base, "m").endswith(os.path.join("m", "3"))
    assert served() == ("/models/m", [2, 3], {"stable": 2, "canary": 3})  # root kept
    with pytest.raises(ValueError, match=r"'m' has versions \[1, 2, 3\] .* stable=7"):
        set_serving(base, "m", stable=7)

    # warmup: one PredictRequest of each signature, in TF Serving's record format, that
    # the exported signatures answer
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    folder = os.path.join(base, "m", "3")
    records = tf.data.TFRecordDataset(
        os.path.join(folder, "assets.extra", "tf_serving_warmup_requests")
    )
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in records]
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == [
        "serving_default",
        "serve_bytes",
    ]
    loaded = tf.saved_model.load(folder)
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == "m"
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        out = loaded.signatures[request.model_spec.signature_name](**inputs)
        assert out["probabilities"].shape == (1, 2)


def _dense_folders(root, count=12, size=(40, 48)):
    """Images with a 3-class mask (which third of the picture, by colour) and a depth
    map (.npy and 16-bit PNG, millimetres) each."""
    rng = np.random.default_rng(5)
    for folder in ("images", "labels", "depth"):
        (root / folder).mkdir()
    for i in range(count):
        labels = np.repeat(np.arange(3, dtype=np.uint8), -(-size[1] // 3))[: size[1]]
        labels = np.roll(np.tile(labels, (size[0], 1)), i * 5, axis=1)
        colours = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200]], np.uint8)
        noise = rng.integers(0, 40, (*size, 3), dtype=np.uint8)
        Image.fromarray(colours[labels] + noise).save(root / "images" / f"{i:02d}.png")
        Image.fromarray(labels).save(root / "labels" / f"{i:02d}.png")
        metres = 1.0 + labels.astype(np.float32) + rng.uniform(0, 0.1, size).astype(np.float32)
        if i % 2:
            np.save(root / "depth" / f"{i:02d}.npy", metres)
        else:
            millimetres = np.round(metres * 1000).astype(np.uint16)
            Image.fromarray(millimetres).save(root / "depth" / f"{i:02d}.png")
    (root / "labels" / "classes.txt").write_text("red\ngreen\nblue\n")


@pytest.mark.slow
def test_dense_tasks_from_folders_finetune_and_export(pretrained, tmp_path):
    import tensorflow as tf

    _dense_folders(tmp_path)
    common = [
        "-m",
        "zoo.cli.finetune",
        f"--source={pretrained}",
        "--data=images",
        "--export_base=serving",
        "--holdout=0.25",
        "--gin_bindings=zoo.experiment.train.epochs = 1",
        "--gin_bindings=zoo.experiment.train.batch_size = 4",
    ]
    runs = {
        "semantic_segmentation": ["--masks=labels", "--model_dir=runs/seg", "--name=seg"],
        "depth": ["--masks=depth", "--model_dir=runs/depth", "--name=depth"],
    }
    for task, args in runs.items():
        run = _run(*common, f"--task={task}", *args, cwd=tmp_path)
        assert run.returncode == 0, run.stderr[-3000:]
        assert f"{task} " in run.stdout
        if task == "semantic_segmentation":  # what it found, and where
            assert "3 classes (red, green, blue) from" in run.stdout
            assert "classes.txt" in run.stdout

    info = json.load(open(tmp_path / "serving" / "seg" / "1" / "zoo_export.json"))
    assert info["class_names"] == ["red", "green", "blue"] and info["input_size"] == 32
    png = (tmp_path / "images" / "00.png").read_bytes()
    for name, key, shape in (("seg", "probabilities", (1, 32, 32, 3)), ("depth", "depth", None)):
        model = tf.saved_model.load(str(tmp_path / "serving" / name / "1"))
        out = model.signatures["serve_bytes"](encoded=tf.constant([png]))
        assert out[key].shape[:3] == (1, 32, 32), (name, out[key].shape)
        if shape:
            assert tuple(out[key].shape) == shape
            names = [n.decode() for n in out["class_names"].numpy()[0]]
            assert names == ["red", "green", "blue"]


@pytest.mark.slow
def test_an_exported_trunk_finetunes_exports_and_restores(pretrained, tmp_path):
    import keras

    from export import export_trunk
    from zoo import experiment
    from zoo.data.sources import write_photo_classes
    from zoo.errors import MissingFile
    from zoo.evaluation.exported import ExportedTrunk

    method, _ = experiment.restore(pretrained)
    norms = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in method.trunk.layers)
    source = export_trunk(method.trunk, str(tmp_path / "trunk"))
    write_photo_classes(str(tmp_path / "photos"), NAMES, crops_per_photo=6, crop=48)
    run = _run(
        "-m",
        "zoo.cli.finetune",
        "--source=trunk",  # no --input_size: 32, from the export's signature
        "--data=photos",
        "--model_dir=ft",
        "--export_base=serving",
        "--name=photos",
        "--holdout=0.25",
        "--gin_bindings=zoo.experiment.train.epochs = 1",
        "--gin_bindings=zoo.experiment.train.batch_size = 8",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"BatchNorm statistics of {norms} layers measured" in run.stdout
    info = json.load(open(tmp_path / "serving" / "photos" / "1" / "zoo_export.json"))
    assert info["input_size"] == 32 and info["class_names"] == NAMES

    finetuned, _ = experiment.restore(str(tmp_path / "ft"))  # a TFSMLayer, in safe mode
    layer = next(x for x in finetuned.trunk.layers if isinstance(x, ExportedTrunk))
    original = {w.name: w.numpy() for w in ExportedTrunk(source).weights}
    moved = [w.name for w in layer.trainable_weights if not np.allclose(w, original[w.name])]
    assert len(moved) == len(layer.trainable_weights)  # every weight finetuned
    statistics = [v for pair in layer.batch_norm_statistics() for v in pair]
    assert len(statistics) == 2 * norms
    assert all(not np.allclose(original[v.name], v.numpy()) for v in statistics)
    os.rename(source, str(tmp_path / "moved"))
    with pytest.raises(MissingFile, match="exported trunk .* is gone"):
        experiment.restore(str(tmp_path / "ft"))


_CONFIG_OF = """
import json, sys
from zoo.cli.finetune import finetune_config
print(finetune_config(*json.loads(sys.argv[1]), class_names=["sky", "it's"]), end="")
"""


def test_the_generated_config_keeps_paths_with_quotes_and_spaces(tmp_path):
    data = tmp_path / 'my "labelled" photos, it\'s\\here'
    masks = tmp_path / "masks 'v2'"
    for folder in (data / "a", masks / "a"):
        folder.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(data / "a" / "x.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(masks / "a" / "x.png")
    arguments = [
        "random", str(data), "semantic_segmentation", "finetune", "coarse", 32, 0.25,
        None, str(masks), None, None,
    ]  # fmt: skip
    # in a process of its own: zoo-finetune's module defines flags other commands' share
    run = processes.python("-c", _CONFIG_OF, json.dumps(arguments), env={"PYTHONPATH": ROOT})
    assert run.returncode == 0, run.stderr[-2000:]
    gin.parse_config(run.stdout)
    assert gin.query_parameter("train/zoo.data.ImageFolder.path") == str(data)
    assert gin.query_parameter("train/zoo.data.ImageFolder.masks") == str(masks)
    assert gin.query_parameter("train/zoo.data.ImageFolder.class_names") == ["sky", "it's"]
    assert gin.query_parameter("zoo.evaluation.source_trunk.source") == "random"
    assert gin.query_parameter("zoo.evaluation.source_trunk.like") is None
