"""The one definition of a training example, shared by the writer, the reader and serving.

An example is one aligned face:
  image         JPEG bytes of the ALIGNED_SIZE x ALIGNED_SIZE RGB face
  landmarks     2 * NUM_LANDMARKS float32, interleaved x0, y0, x1, y1, ... in aligned pixels, 0-based
  au            int64 per AU of the dataset's set: 1 present, 0 absent, UNKNOWN_LABEL not coded
  inter_ocular  float32, distance of the two eye centres in aligned pixels
  subject, task bytes; frame int64 (the raw frame number, for tracing back to the source)
  flow          the optical flow from this face to the aligned face of frame `flow_to` of the
                same sequence, for the auxiliary flow task (docs/auxiliary-tasks.md): raw bytes of
                float16 (FLOW_SIZE, FLOW_SIZE, 2), (dx, dy) in aligned pixels, one vector per
                FLOW_STRIDE x FLOW_STRIDE cell; empty when the frame has no partner
  flow_to       int64, the partner's frame number, NO_FLOW when there is none

Unlabelled frames (the auxiliary tasks' extra faces) are examples too, every `au` UNKNOWN_LABEL;
they are written to files of their own (pipeline/job.py). Records written before the flow
fields existed parse with no flow.
"""
import numpy as np
import tensorflow as tf

from schemas.face import ALIGNED_SIZE, NUM_LANDMARKS

UNKNOWN_LABEL = -1
LANDMARK_VALUES = 2 * NUM_LANDMARKS
# The flow target has the resolution of the network's region features (crop / 4): one vector per
# 4 x 4 aligned pixels; the input pipeline crops and scales it with the face.
FLOW_STRIDE = 4
FLOW_SIZE = ALIGNED_SIZE // FLOW_STRIDE
FLOW_SHAPE = (FLOW_SIZE, FLOW_SIZE, 2)
NO_FLOW = -1


def feature_spec(num_aus: int) -> dict:
    """`tf.io.parse_example` spec for a dataset with `num_aus` AUs."""
    return {
        "image": tf.io.FixedLenFeature([], tf.string),
        "landmarks": tf.io.FixedLenFeature([LANDMARK_VALUES], tf.float32),
        "au": tf.io.FixedLenFeature([num_aus], tf.int64),
        "inter_ocular": tf.io.FixedLenFeature([], tf.float32),
        "subject": tf.io.FixedLenFeature([], tf.string),
        "task": tf.io.FixedLenFeature([], tf.string),
        "frame": tf.io.FixedLenFeature([], tf.int64),
        "flow": tf.io.FixedLenFeature([], tf.string, default_value=b""),
        "flow_to": tf.io.FixedLenFeature([], tf.int64, default_value=NO_FLOW),
    }


def encode_example(*, image_jpeg: bytes, landmarks: np.ndarray, au: np.ndarray,
                   inter_ocular: float, subject: str, task: str, frame: int,
                   flow: np.ndarray | None = None, flow_to: int = NO_FLOW) -> bytes:
    """Serialize one aligned face. `landmarks` is (NUM_LANDMARKS, 2) or already flat; `flow`
    FLOW_SHAPE (to frame `flow_to`) or None."""
    landmarks = np.asarray(landmarks, np.float32).reshape(-1)
    if landmarks.size != LANDMARK_VALUES:
        raise ValueError(f"expected {NUM_LANDMARKS} landmarks, got {landmarks.size // 2}")
    if (flow is None) != (flow_to == NO_FLOW):
        raise ValueError("a flow target needs the frame it leads to (flow_to), and only then")
    if flow is not None and np.shape(flow) != FLOW_SHAPE:
        raise ValueError(f"flow must be {FLOW_SHAPE}, got {np.shape(flow)}")
    flow_bytes = b"" if flow is None else np.asarray(flow, "<f2").tobytes()
    features = {
        "image": _bytes(image_jpeg),
        "landmarks": tf.train.Feature(float_list=tf.train.FloatList(value=landmarks)),
        "au": tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(au, np.int64))),
        "inter_ocular": tf.train.Feature(float_list=tf.train.FloatList(value=[inter_ocular])),
        "subject": _bytes(subject.encode()),
        "task": _bytes(task.encode()),
        "frame": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(frame)])),
        "flow": _bytes(flow_bytes),
        "flow_to": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(flow_to)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def parse_examples(serialized: tf.Tensor, num_aus: int, with_flow: bool = False) -> dict:
    """Parse a batch (or a scalar) of serialized examples; `image` is decoded to uint8 HxWx3.

    with_flow: `flow` is decoded to float32 FLOW_SHAPE (zeros where there is none) and
    `has_flow` tells which have one; otherwise the flow fields are left out."""
    parsed = tf.io.parse_example(serialized, feature_spec(num_aus))
    flow_bytes = parsed.pop("flow")
    flow_to = parsed.pop("flow_to")
    if with_flow:
        parsed["has_flow"] = tf.not_equal(flow_to, NO_FLOW)
        parsed["flow_to"] = flow_to
        parsed["flow"] = _decode_flow(flow_bytes)
    decode = lambda jpeg: tf.ensure_shape(  # noqa: E731
        tf.io.decode_jpeg(jpeg, channels=3), [ALIGNED_SIZE, ALIGNED_SIZE, 3])
    if parsed["image"].shape.rank == 0:
        parsed["image"] = decode(parsed["image"])
    else:
        parsed["image"] = tf.map_fn(decode, parsed["image"],
                                    fn_output_signature=tf.TensorSpec([ALIGNED_SIZE, ALIGNED_SIZE, 3], tf.uint8))
    return parsed


def _decode_flow(flow_bytes: tf.Tensor) -> tf.Tensor:
    """float16 bytes (or b"") of any batch shape -> float32 (..., *FLOW_SHAPE)."""
    flat = tf.reshape(flow_bytes, [-1])
    values = FLOW_SIZE * FLOW_SIZE * 2
    padded = tf.where(tf.equal(tf.strings.length(flat), 0),
                      tf.constant(np.zeros(values, "<f2").tobytes()), flat)
    flow = tf.cast(tf.io.decode_raw(padded, tf.float16, little_endian=True), tf.float32)
    return tf.reshape(flow, tf.concat([tf.shape(flow_bytes), FLOW_SHAPE], 0))


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
