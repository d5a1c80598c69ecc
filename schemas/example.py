"""The one definition of a training example, shared by the writer, the reader and serving.

An example is one aligned face:
  image         JPEG bytes of the ALIGNED_SIZE x ALIGNED_SIZE RGB face
  landmarks     2 * NUM_LANDMARKS float32, interleaved x0, y0, x1, y1, ... in aligned pixels, 0-based
  au            int64 per AU of the dataset's set: 1 present, 0 absent, UNKNOWN_LABEL not coded
  inter_ocular  float32, distance of the two eye centres in aligned pixels
  subject, task bytes; frame int64 (the raw frame number, for tracing back to the source)
"""
import numpy as np
import tensorflow as tf

from schemas.face import ALIGNED_SIZE, NUM_LANDMARKS

UNKNOWN_LABEL = -1
LANDMARK_VALUES = 2 * NUM_LANDMARKS


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
    }


def encode_example(*, image_jpeg: bytes, landmarks: np.ndarray, au: np.ndarray,
                   inter_ocular: float, subject: str, task: str, frame: int) -> bytes:
    """Serialize one aligned face. `landmarks` is (NUM_LANDMARKS, 2) or already flat."""
    landmarks = np.asarray(landmarks, np.float32).reshape(-1)
    if landmarks.size != LANDMARK_VALUES:
        raise ValueError(f"expected {NUM_LANDMARKS} landmarks, got {landmarks.size // 2}")
    features = {
        "image": _bytes(image_jpeg),
        "landmarks": tf.train.Feature(float_list=tf.train.FloatList(value=landmarks)),
        "au": tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(au, np.int64))),
        "inter_ocular": tf.train.Feature(float_list=tf.train.FloatList(value=[inter_ocular])),
        "subject": _bytes(subject.encode()),
        "task": _bytes(task.encode()),
        "frame": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(frame)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def parse_examples(serialized: tf.Tensor, num_aus: int) -> dict:
    """Parse a batch (or a scalar) of serialized examples; `image` is decoded to uint8 HxWx3."""
    parsed = tf.io.parse_example(serialized, feature_spec(num_aus))
    decode = lambda jpeg: tf.ensure_shape(  # noqa: E731
        tf.io.decode_jpeg(jpeg, channels=3), [ALIGNED_SIZE, ALIGNED_SIZE, 3])
    if parsed["image"].shape.rank == 0:
        parsed["image"] = decode(parsed["image"])
    else:
        parsed["image"] = tf.map_fn(decode, parsed["image"],
                                    fn_output_signature=tf.TensorSpec([ALIGNED_SIZE, ALIGNED_SIZE, 3], tf.uint8))
    return parsed


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
