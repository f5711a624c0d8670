"""A stand-in for tensorflow_model_server, for tests: serves the exports of a models.config
over TF Serving's REST predict API (row format) and its gRPC PredictionService, from a
process that has TensorFlow and no zoo. Prints "READY <rest port> <grpc port>".

    python serving_standin.py serving/models.config
"""

import json
import re
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.modules["zoo"] = None  # what a model server has: no zoo
import base64  # noqa: E402

import grpc  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402


def load(config_path):
    """{(name, version): SavedModel} and {(name, label): version} of a models.config."""
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(open(config_path).read(), config)
    models, labels = {}, {}
    for entry in config.model_config_list.config:
        versions = list(entry.model_version_policy.specific.versions)
        for version in versions:
            models[(entry.name, version)] = tf.saved_model.load(f"{entry.base_path}/{version}")
        for label, version in entry.version_labels.items():
            labels[(entry.name, label)] = version
        labels.setdefault((entry.name, "stable"), versions[0])
    return models, labels


def answer(models, labels, name, version, label, signature, inputs):
    version = version or labels[(name, label or "stable")]
    return models[(name, version)].signatures[signature](**inputs)


class Rest(BaseHTTPRequestHandler):
    def do_POST(self):
        found = re.fullmatch(
            r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/(\w+))?:predict", self.path
        )
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        try:
            encoded = [base64.b64decode(i["b64"]) for i in body["instances"]]
            out = answer(
                MODELS,
                LABELS,
                found[1],
                int(found[2] or 0),
                found[3],
                body.get("signature_name", "serving_default"),
                {"encoded": tf.constant(encoded)},
            )
            rows = [
                {
                    k: v[i].numpy().tolist() if v.dtype != tf.string else _text(v[i])
                    for k, v in out.items()
                }
                for i in range(len(encoded))
            ]
            self._send(200, {"predictions": rows})
        except tf.errors.InvalidArgumentError as error:
            self._send(400, {"error": error.message})

    def _send(self, code, payload):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def _text(tensor):
    value = tensor.numpy()
    return value.decode() if isinstance(value, bytes) else [v.decode() for v in value.tolist()]


class Grpc(prediction_service_pb2_grpc.PredictionServiceServicer):
    def Predict(self, request, context):
        spec = request.model_spec
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        try:
            out = answer(
                MODELS,
                LABELS,
                spec.name,
                spec.version.value,
                spec.version_label or None,
                spec.signature_name or "serving_default",
                inputs,
            )
        except tf.errors.InvalidArgumentError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)
        response = predict_pb2.PredictResponse()
        for key, value in out.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response


MODELS, LABELS = load(sys.argv[1])
rest = ThreadingHTTPServer(("127.0.0.1", 0), Rest)
threading.Thread(target=rest.serve_forever, daemon=True).start()
server = grpc.server(futures.ThreadPoolExecutor(2))
prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Grpc(), server)
grpc_port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(f"READY {rest.server_port} {grpc_port}", flush=True)
server.wait_for_termination()
