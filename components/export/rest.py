"""TF Serving's REST predict API, reproduced on a loaded SavedModel (no server needed).

TF Serving takes `POST /v1/models/<name>[/versions/<v>]:predict` with a JSON body in the row
format {"signature_name": ..., "instances": [...]} (one instance per batch element: the value of
the single input, or a {input_name: value} object) or the columnar format {"inputs": ...}.
Binary strings travel as {"b64": "<base64>"}. The reply is {"predictions": [...]}: per instance an
{output_name: value} object (a bare value when the signature has one output); {"outputs": {...}}
for the columnar format.

`request_to_inputs` converts a body into the signature's input tensors the way the server does;
`predict` runs it through a `tf.saved_model.load`ed model and shapes the reply like the server,
so a client's JSON can be checked offline against the Keras model (tests/test_export.py).
"""
from __future__ import annotations

import base64
import json

import numpy as np


def _decode_strings(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode_strings(v) for v in value]
    if isinstance(value, str):
        return value.encode()
    return value


def _input_specs(signature) -> dict:
    _, specs = signature.structured_input_signature
    return specs


def _to_array(value, spec):
    import tensorflow as tf
    if spec.dtype == tf.string:
        return np.array(_decode_strings(value), dtype=object)
    return np.asarray(value, dtype=spec.dtype.as_numpy_dtype)


def request_to_inputs(body, signature) -> dict:
    """A REST predict body (dict or JSON text) -> {input name: np.ndarray} for `signature`."""
    if isinstance(body, (str, bytes)):
        body = json.loads(body)
    specs = _input_specs(signature)
    names = sorted(specs)
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise ValueError('"instances" must be a non-empty list')
        columns = {n: [] for n in names}
        for instance in instances:
            if isinstance(instance, dict) and set(instance) != {"b64"}:
                missing = set(names) - set(instance)
                if missing:
                    raise ValueError(f"instance lacks input(s) {sorted(missing)}")
                for n in names:
                    columns[n].append(instance[n])
            elif len(names) == 1:
                columns[names[0]].append(instance)
            else:
                raise ValueError(f"the signature has inputs {names}: each instance must be an object")
        return {n: _to_array(columns[n], specs[n]) for n in names}
    if "inputs" in body:
        inputs = body["inputs"]
        if not isinstance(inputs, dict):
            if len(names) != 1:
                raise ValueError(f"the signature has inputs {names}: \"inputs\" must be an object")
            inputs = {names[0]: inputs}
        return {n: _to_array(inputs[n], specs[n]) for n in names}
    raise ValueError('a predict body needs "instances" (row format) or "inputs" (columnar format)')


def outputs_to_response(outputs: dict, row_format: bool = True) -> dict:
    """Signature outputs -> the JSON-ready reply TF Serving sends."""
    arrays = {name: np.asarray(value) for name, value in outputs.items()}
    if not row_format:
        return {"outputs": {n: a.tolist() for n, a in arrays.items()}}
    batch = next(iter(arrays.values())).shape[0]
    if len(arrays) == 1:
        (array,) = arrays.values()
        return {"predictions": array.tolist()}
    return {"predictions": [{n: a[i].tolist() for n, a in arrays.items()} for i in range(batch)]}


def predict(loaded, body) -> dict:
    """Answer a REST predict body with a `tf.saved_model.load`ed model, as TF Serving would."""
    import tensorflow as tf
    if isinstance(body, (str, bytes)):
        body = json.loads(body)
    signature = loaded.signatures[body.get("signature_name", "serving_default")]
    inputs = request_to_inputs(body, signature)
    outputs = signature(**{n: tf.constant(v) for n, v in inputs.items()})
    return outputs_to_response({n: t.numpy() for n, t in outputs.items()},
                               row_format="instances" in body)


def images_body(images: np.ndarray, signature_name: str | None = None) -> dict:
    """A client's row-format body for the image signature: nested lists of uint8."""
    body = {"instances": np.asarray(images, np.uint8).tolist()}
    if signature_name:
        body["signature_name"] = signature_name
    return body


def examples_body(serialized: list[bytes], signature_name: str = "examples") -> dict:
    """A client's row-format body for the tf.Example signature: {"b64": ...} per example."""
    return {"signature_name": signature_name,
            "instances": [{"b64": base64.b64encode(s).decode("ascii")} for s in serialized]}
