"""A client of a zoo model in TF Serving, over REST and over gRPC. It needs TensorFlow and
`tensorflow-serving-api` (for gRPC), not zoo. The guide "Finetune and serve" shows this
file; tests/cli/test_serving_client.py runs it against a REST and a gRPC server that
answer from an export.

    python examples/serving_client.py --server=localhost:8501 --model=photos a.jpg b.png
    python examples/serving_client.py --api=grpc --server=localhost:8500 --model=photos a.jpg
"""

import argparse
import base64
import json
import urllib.error
import urllib.request


def rest_body(image_files, signature="serve_bytes"):
    """The JSON body of a REST predict request: each file's bytes, base64-encoded."""
    instances = [{"b64": base64.b64encode(open(f, "rb").read()).decode()} for f in image_files]
    return {"signature_name": signature, "instances": instances}


def rest_url(server, model, version=None, label=None):
    """TF Serving's predict URL; without a version or label the server answers with the
    version models.config marks "stable"."""
    path = f"/v1/models/{model}"
    if version is not None:
        path += f"/versions/{version}"
    elif label is not None:
        path += f"/labels/{label}"
    return f"http://{server}{path}:predict"


def predict_rest(server, model, image_files, version=None, label=None, timeout=30):
    """[{output: value}] per image, or a RuntimeError with the server's message."""
    body = json.dumps(rest_body(image_files)).encode()
    request = urllib.request.Request(
        rest_url(server, model, version, label), body, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)["predictions"]
    except urllib.error.HTTPError as error:  # 400 for a malformed request, with a message
        raise RuntimeError(f"{error.code}: {json.load(error).get('error')}") from None


def grpc_request(image_files, model, version=None, label=None):
    """A PredictRequest of the `serve_bytes` signature with the files' bytes."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serve_bytes"
    if version is not None:
        request.model_spec.version.value = version
    elif label is not None:
        request.model_spec.version_label = label
    files = [open(f, "rb").read() for f in image_files]
    request.inputs["encoded"].CopyFrom(tf.make_tensor_proto(files, dtype=tf.string))
    return request


def predict_grpc(server, model, image_files, version=None, label=None, timeout=30):
    """{output: numpy array over the images}, or grpc.RpcError (INVALID_ARGUMENT for a
    malformed request, with the model's message)."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(server) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(grpc_request(image_files, model, version, label), timeout)
    return {key: tf.make_ndarray(value) for key, value in response.outputs.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="JPEG, PNG, GIF or BMP files")
    parser.add_argument("--server", default="localhost:8501", help="host:port")
    parser.add_argument("--api", choices=["rest", "grpc"], default="rest")
    parser.add_argument("--model", required=True, help="the model's name in models.config")
    parser.add_argument("--version", type=int, help="a version (default: the stable one)")
    parser.add_argument("--label", help='a version label: "stable" or "canary"')
    args = parser.parse_args(argv)
    if args.api == "rest":
        predictions = predict_rest(args.server, args.model, args.files, args.version, args.label)
        labels = [p.get("label") for p in predictions]
    else:
        outputs = predict_grpc(args.server, args.model, args.files, args.version, args.label)
        labels = [b.decode() for b in outputs["label"]] if "label" in outputs else None
    for path, label in zip(args.files, labels or [None] * len(args.files)):
        print(f"{path}: {label}")
    return labels


if __name__ == "__main__":
    main()
