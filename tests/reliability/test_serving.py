"""Malformed requests to every signature of every export kind, in a separate process:
each gets an answer or an InvalidArgument naming what was expected, never an abort."""

import io
import json
import struct
import zlib

import keras
import numpy as np
import processes
import pytest
from PIL import Image

from export import export_model, export_trunk
from zoo.data.synthetic import SceneSpec
from zoo.methods import MultiTask
from zoo.tasks import Depth
from zoo.trunks import resnet

S = 32  # input size of the fixed-size exports
CAP = 2000  # max_pixels of the task export

# Sends the requests in a fresh interpreter that has no zoo (as a model server would),
# one JSON line per request: its outcome and the first line of any error.
_CLIENT = """
import json, sys
sys.modules["zoo"] = None
import numpy as np, tensorflow as tf
cases = json.load(open(sys.argv[1]))
arrays = np.load(sys.argv[2], allow_pickle=True)
loaded = {}


def memory():  # KiB
    lines = open("/proc/self/status").read().splitlines()
    return {l.split(":")[0]: int(l.split()[1]) for l in lines if l.startswith("Vm")}


for case in cases:
    if case["path"] not in loaded:  # each export loaded once, as a server does
        loaded[case["path"]] = tf.saved_model.load(case["path"])
    model = loaded[case["path"]]
    fn = model.signatures[case["signature"]]
    value = arrays[case["id"]]
    with open("/proc/self/clear_refs", "w") as f:  # the peak (VmHWM) restarts here
        f.write("5")
    before = memory()["VmRSS"]
    try:
        if value.dtype == object:
            value = tf.constant(value.tolist(), tf.string)
        else:
            value = tf.constant(value)
        out = fn(**{case["arg"]: value})
        result = {"outcome": "ok", "shapes": {k: list(v.shape) for k, v in out.items()}}
    except Exception as error:
        lines = [l for l in str(error).splitlines() if l.strip() and "Graph execution" not in l]
        text = " ".join(l for l in lines if not l.startswith(("  ", "Node:", "Detected at")))
        result = {"outcome": type(error).__name__, "message": text[:400]}
    result["peak_mib"] = (memory()["VmHWM"] - before) / 1024
    print(json.dumps({"id": case["id"], **result}), flush=True)
"""


def _png(array, mode=None):
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _encoded(fmt, size=(20, 24), channels=3):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 255, (*size, channels) if channels > 1 else size, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(width, height):
    """A PNG's signature and IHDR chunk (8-bit RGB of `width` x `height`)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)


def _large_png(width, height):
    """A valid PNG of zeros, compressed row by row (never held decoded)."""
    pack = zlib.compressobj(9)
    row = bytes(1 + 3 * width)  # filter byte 0, then RGB zeros
    data = b"".join(pack.compress(row) for _ in range(height)) + pack.flush()
    return _png_header(width, height) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _animated_gif(frames, size):
    images = [Image.fromarray(np.full((*size, 3), 40 * i, np.uint8)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def _float_cases(fixed):
    """(name, array, expected): expected "ok", or a message fragment of the error."""
    shape = f"[?,{S},{S},3]" if fixed else "[?,?,?,3]"
    good = np.random.default_rng(1).random((2, S, S, 3)).astype("float32")
    return [
        ("rank 3", np.zeros((S, S, 3), "float32"), shape),
        ("rank 2", np.zeros((S, 3), "float32"), shape),
        ("rank 1", np.zeros((3,), "float32"), shape),
        ("scalar", np.zeros((), "float32"), shape),
        ("rank 5", np.zeros((1, 1, S, S, 3), "float32"), shape),
        ("1 channel", np.zeros((1, S, S, 1), "float32"), shape),
        ("4 channels", np.zeros((1, S, S, 4), "float32"), shape),
        ("half size", np.zeros((1, S // 2, S // 2, 3), "float32"), shape if fixed else "ok"),
        ("not square", np.zeros((1, S, S + 8, 3), "float32"), shape if fixed else "ok"),
        ("zero height", np.zeros((1, 0, S, 3), "float32"), shape if fixed else ">= 1"),
        ("empty batch", np.zeros((0, S, S, 3), "float32"), "ok"),
        ("float64", np.zeros((1, S, S, 3), "float64"), "float"),
        ("int32", np.zeros((1, S, S, 3), "int32"), "int32"),
        ("not a number", np.full((1, S, S, 3), np.nan, "float32"), "ok"),
        ("good after the bad ones", good, "ok"),
    ]


def _bytes_cases():
    png = _png(np.zeros((S, S, 3), np.uint8))
    over = f"more than {CAP} pixels"
    strings = [
        ("empty batch", np.array([], dtype=object), "ok"),
        ("junk", np.array([b"hello"], dtype=object), "not JPEG, PNG, GIF or BMP"),
        ("empty string", np.array([b""], dtype=object), "not JPEG, PNG, GIF or BMP"),
        (
            "one bad among good",
            np.array([png, b"junk", png, b"\x00" * 64], dtype=object),
            "GIF or BMP:] [1 3]",
        ),
        ("scalar", np.array(png, dtype=object), "[?]"),
        ("rank 2", np.array([[png]], dtype=object), "[?]"),
        ("truncated PNG", np.array([png[: len(png) // 2]], dtype=object), "PNG"),
        ("floats", np.zeros((2,), "float32"), "string"),
        ("JPEG of another size", np.array([_encoded("JPEG")], dtype=object), "ok"),
        ("grayscale PNG", np.array([_encoded("PNG", channels=1)], dtype=object), "ok"),
        ("RGBA PNG", np.array([_encoded("PNG", channels=4)], dtype=object), "ok"),
        ("GIF", np.array([_encoded("GIF")], dtype=object), "ok"),
        ("BMP", np.array([_encoded("BMP")], dtype=object), "ok"),
        ("PNG over max_pixels", np.array([_encoded("PNG", (50, 50))], dtype=object), over),
        ("JPEG over max_pixels", np.array([_encoded("JPEG", (40, 60))], dtype=object), over),
        ("GIF over max_pixels", np.array([_encoded("GIF", (50, 50))], dtype=object), over),
        ("BMP over max_pixels", np.array([_encoded("BMP", (50, 50))], dtype=object), over),
        # each frame under the cap, three together over it: all frames are decoded
        (
            "animated GIF over max_pixels",
            np.array([_animated_gif(3, (30, 30))], dtype=object),
            over,
        ),
        ("one large among good", np.array([png, _large_png(60, 60), png], dtype=object), "[1]"),
        # a header announcing 100,000 x 100,000 pixels, nothing decodable after it
        (
            "crafted PNG header",
            np.array([_png_header(100_000, 100_000) + bytes(64)], dtype=object),
            over,
        ),
        # decoded, 432 MB of bytes and 1.7 GB of floats (measured by the client)
        ("12,000 x 12,000 PNG", np.array([_large_png(12_000, 12_000)], dtype=object), over),
        ("good after the bad ones", np.array([png, png], dtype=object), "ok"),
    ]
    return strings


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports")
    keras.utils.set_random_seed(0)
    # dilated (stride 8), fixed size: the kind whose convolutions abort on a wrong rank
    fixed = resnet(
        18,
        version=2,
        width_multiplier=0.125,
        stop_at="block3",
        output_stride=8,
        input_shape=(S, S, 3),
    )
    free = resnet(18, version=2, width_multiplier=0.125, stop_at="block2", output_stride=8)
    spec = SceneSpec(variant="----", mode="multi", resolution=S)
    method = MultiTask(
        resnet(18, version=2, width_multiplier=0.125, stop_at="block2", input_shape=(S, S, 3)),
        [Depth(spec, num_examples=4, eval_examples=4, head_width=8)],
    )
    return {
        "fixed trunk": (export_trunk(fixed, str(folder / "fixed")), True),
        "free trunk": (export_trunk(free, str(folder / "free")), False),
        "task": (
            export_model(method, "depth", str(folder / "serving"), "depth", max_pixels=CAP),
            True,
        ),
    }


@pytest.mark.slow
def test_malformed_requests_never_abort_the_server(exports, tmp_path):
    """Every request of the tables below to every signature of a fixed-size trunk, an
    any-size trunk and a task export, in one TensorFlow-only process: the expected
    answer, never an abort; files over max_pixels refused before decoding (peak memory
    under 50 MiB for a 12,000 x 12,000 PNG)."""
    cases, arrays, expected = [], {}, {}
    for kind, (path, fixed) in exports.items():
        signatures = ["serving_default", "train"] if "trunk" in kind else ["serving_default"]
        requests = [(sig, "images", c) for sig in signatures for c in _float_cases(fixed)]
        if kind == "task":
            requests += [("serve_bytes", "encoded", c) for c in _bytes_cases()]
        for signature, arg, (name, array, outcome) in requests:
            key = f"{kind} | {signature} | {name}"
            case_id = f"c{len(cases)}"
            cases.append({"id": case_id, "path": path, "signature": signature, "arg": arg})
            arrays[case_id], expected[case_id] = array, (key, outcome)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    np.savez(tmp_path / "arrays.npz", **arrays)
    (tmp_path / "client.py").write_text(_CLIENT)
    run = processes.python(
        str(tmp_path / "client.py"), str(tmp_path / "cases.json"), str(tmp_path / "arrays.npz")
    )
    assert run.returncode == 0, run.stderr[-3000:]  # a SIGABRT would be -6
    answers = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(answers) == len(cases) >= 3 * 12
    for answer in answers:
        key, outcome = expected[answer["id"]]
        if outcome == "ok":
            assert answer["outcome"] == "ok", (key, answer)
            if "empty" in key:
                assert all(s[0] == 0 for s in answer["shapes"].values()), (key, answer)
        else:
            assert answer["outcome"] != "ok", (key, answer)
            assert outcome in answer["message"], (key, answer)
        if "max_pixels" in key or "12,000" in key:  # refused before decoding
            assert answer["peak_mib"] < 50, (key, answer)
