"""TF Serving's REST predict API, reproduced on a loaded SavedModel (no server needed).

TF Serving takes `POST /v1/models/<name>[/versions/<v>]:predict` with a JSON body in the row
format {"signature_name": ..., "instances": [...]} (one instance per batch element: the value of
the single input, or a {input_name: value} object) or the columnar format {"inputs": ...}.
Binary strings travel as {"b64": "<base64>"}. The reply is {"predictions": [...]}: per instance an
{output_name: value} object (a bare value when the signature has one output); {"outputs": {...}}
for the columnar format.

`request_to_inputs` converts a body into the signature's input tensors the way the server does;
`predict` runs it through a `tf.saved_model.load`ed model and shapes the reply like the server,
so a client's JSON can be checked offline against the Keras model (tests/components/test_export.py). A body
the server would refuse gets the server's error reply instead, {"error": "<message>"}, with a
message that says what to send.
"""
from __future__ import annotations

import base64
import json

import numpy as np

_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


class RequestError(ValueError):
    """A predict body TF Serving would refuse; its reply is {"error": str(error)}."""


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


def _to_array(name: str, value, spec) -> np.ndarray:
    """One input's values as the signature takes them: a non-empty batch, its shape, its dtype."""
    import tensorflow as tf
    strings = spec.dtype == tf.string
    try:
        array = np.array(_decode_strings(value), dtype=object) if strings else np.asarray(value)
    except ValueError as e:  # rows of different lengths
        raise RequestError(f'input "{name}" is not a rectangular array ({e})') from None
    if array.ndim and not array.shape[0]:
        raise RequestError(f'the batch of input "{name}" is empty: send at least one instance')
    expected = tuple(spec.shape)
    if array.ndim != len(expected) or any(
            want is not None and want != got for want, got in zip(expected, array.shape)):
        shape = str(tuple("batch" if d is None else d for d in expected)).replace("'", "")
        raise RequestError(f'input "{name}" must have shape {shape}, got {array.shape}')
    if strings:
        if not all(isinstance(v, bytes) for v in array.flat):
            raise RequestError(f'input "{name}" takes strings (binary ones as {{"b64": "..."}})')
        return array
    dtype = spec.dtype.as_numpy_dtype
    if spec.dtype.is_integer:
        low, high = np.iinfo(dtype).min, np.iinfo(dtype).max
        if array.dtype.kind not in "iu":
            sent = (f"numbers with a decimal point such as {array.flat[0]:g}"
                    if array.dtype.kind == "f" else f"{array.dtype} values")
            raise RequestError(f'input "{name}" takes integers {low}-{high} (an image\'s pixel '
                               f"values), not {sent}: send the integers, not [0, 1]-normalised "
                               "floats")
        if array.min() < low or array.max() > high:
            raise RequestError(f'input "{name}" takes integers {low}-{high}, but the request '
                               f"sends values from {array.min()} to {array.max()}")
    return array.astype(dtype)


def _body(body) -> dict:
    """The body as a JSON object holding exactly one of "instances" and "inputs"."""
    if isinstance(body, (str, bytes)):
        try:
            body = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RequestError(f"the body is not valid JSON ({e})") from None
    if not isinstance(body, dict):
        raise RequestError('the body must be a JSON object, {"instances": [...]} (row format) or '
                           '{"inputs": ...} (columnar format), not '
                           + _JSON_TYPES.get(type(body), type(body).__name__))
    if ("instances" in body) == ("inputs" in body):
        raise RequestError('a predict body needs one of "instances" (row format) and "inputs" '
                           "(columnar format)" + (", not both" if "inputs" in body else ""))
    return body


def _check_names(given, names: list[str], where: str) -> None:
    unknown, missing = sorted(set(given) - set(names)), sorted(set(names) - set(given))
    if unknown or missing:
        raise RequestError(f"{where} " + "; ".join(
            text for text in (unknown and f"has unknown input(s) {unknown}",
                              missing and f"lacks input(s) {missing}") if text)
                           + f": the signature's inputs are {names}")


def request_to_inputs(body, signature) -> dict:
    """A REST predict body (dict or JSON text) -> {input name: np.ndarray} for `signature`.

    Raises RequestError, with the message TF Serving's error reply would carry, for a body the
    server would refuse."""
    body = _body(body)
    specs = _input_specs(signature)
    names = sorted(specs)
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise RequestError('"instances" must be a non-empty list (one entry per image or '
                               "example)")
        columns = {n: [] for n in names}
        for i, instance in enumerate(instances):
            if isinstance(instance, dict) and set(instance) != {"b64"}:
                _check_names(instance, names, f"instance {i}")
                for n in names:
                    columns[n].append(instance[n])
            elif len(names) == 1:
                columns[names[0]].append(instance)
            else:
                raise RequestError(f"the signature has inputs {names}: each instance must be an "
                                   "object")
        return {n: _to_array(n, columns[n], specs[n]) for n in names}
    inputs = body["inputs"]
    if not isinstance(inputs, dict):
        if len(names) != 1:
            raise RequestError(f'the signature has inputs {names}: "inputs" must be an object')
        inputs = {names[0]: inputs}
    _check_names(inputs, names, '"inputs"')
    return {n: _to_array(n, inputs[n], specs[n]) for n in names}


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
    """Answer a REST predict body with a `tf.saved_model.load`ed model, as TF Serving would:
    {"predictions": ...} / {"outputs": ...}, or {"error": "..."} for a body it would refuse."""
    import tensorflow as tf
    try:
        body = _body(body)
        name = body.get("signature_name", "serving_default")
        if name not in loaded.signatures:
            raise RequestError(f"signature_name {json.dumps(name)} is not one of this model's "
                               f"signatures: {', '.join(sorted(loaded.signatures))}")
        signature = loaded.signatures[name]
        inputs = request_to_inputs(body, signature)
    except RequestError as error:
        return {"error": str(error)}
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
