"""assets.extra/tf_serving_warmup_requests: requests TF Serving replays when it loads a version.

A TFRecord file of tensorflow_serving.apis.PredictionLog protos (PredictLog: a PredictRequest per
signature), so the first real request does not pay for graph initialisation. The faces are plain
mid-grey images: no dataset face is ever copied into the exported model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from components.export.signatures import (DEFAULT_SIGNATURE, EXAMPLES_INPUT, EXAMPLES_SIGNATURE,
                                          IMAGES_INPUT)
from schemas.example import ALIGNED_SIZE

WARMUP_FILE = "tf_serving_warmup_requests"


def grey_faces(batch: int = 1) -> np.ndarray:
    return np.full((batch, ALIGNED_SIZE, ALIGNED_SIZE, 3), 128, np.uint8)


def grey_example() -> bytes:
    """A serialized tf.Example with only the schema's "image" feature (a grey JPEG)."""
    import tensorflow as tf
    jpeg = tf.io.encode_jpeg(grey_faces(1)[0]).numpy()
    feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def warmup_requests(model_name: str, batch_sizes=(1,)) -> list:
    """PredictionLog protos: for each batch size one request per signature."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    logs = []
    for batch in batch_sizes:
        for signature, name, value in (
                (DEFAULT_SIGNATURE, IMAGES_INPUT, grey_faces(batch)),
                (EXAMPLES_SIGNATURE, EXAMPLES_INPUT, np.array([grey_example()] * batch, dtype=object))):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            logs.append(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup_file(assets_extra: str | Path, model_name: str, batch_sizes=(1,)) -> Path:
    import tensorflow as tf

    path = Path(assets_extra) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in warmup_requests(model_name, batch_sizes):
            writer.write(log.SerializeToString())
    return path


def read_warmup_file(path: str | Path) -> list:
    """The PredictionLog protos of a warm-up file (for checks and tests)."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    logs = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    return logs
