"""The serving graph: what TF Serving runs, with the evaluation preprocessing inside it.

Three signatures over one trained JaaNet:
  serving_default   images   uint8 (B, 200, 200, 3): aligned RGB faces, as the preprocess stage
                             writes them (schemas.example.ALIGNED_SIZE)
  examples          examples string (B,): serialized tf.Example protos in the schema
                             (schemas.example); only the "image" feature is read, so label-free
                             examples work as well as the training records
  raw_images   images   uint8 (B, H, W, 3): raw RGB frames of any size (one size per request)
               landmarks float32 (B, 98): the face's 49 points in raw-frame pixels, x0, y0, x1, ...
                         (e.g. from pipeline.tracking); the face is aligned inside the graph with
                         pipeline.align's similarity matrix (bilinear, grey 128 border) and the
                         landmarks output comes back in raw-frame pixels
All return
  au_probability  float32 (B, n_au)  P(AU present), AU order of the model (model card / metadata)
  au_present      int32   (B, n_au)  1 where au_probability >= the exported threshold, else 0
                                     (the label code of schemas.example: 1 present, 0 absent)
  landmarks       float32 (B, 98)    x0, y0, x1, y1, ... in pixels of the 200 x 200 aligned face
                                     (raw_images: of the raw frame)

The centre crop (and the resize for crops smaller than the paper's 176), the pixel scaling and the
mapping of landmarks back to the aligned frame are the input pipeline's own tensor functions
(components.train.input_pipeline.center_crop_images / crop_landmarks_to_aligned), so serving
cannot drift from evaluation. A model trained with RTATL's auxiliary heads is served without
them (backbone_only): its SavedModel is that of the same backbone trained without heads.
"""
from __future__ import annotations

import tensorflow as tf

from components.train.input_pipeline import center_crop_images, crop_landmarks_to_aligned
from pipeline.align import BORDER_VALUE, BOX_ENLARGE
from schemas.example import ALIGNED_SIZE, feature_spec
from schemas.face import LEFT_EYE, MOUTH_CORNERS, NOSE_TIP, NUM_LANDMARKS, RIGHT_EYE

DEFAULT_SIGNATURE = "serving_default"
EXAMPLES_SIGNATURE = "examples"
RAW_SIGNATURE = "raw_images"
IMAGES_INPUT = "images"
EXAMPLES_INPUT = "examples"
LANDMARKS_INPUT = "landmarks"
OUTPUTS = ("au_probability", "au_present", "landmarks")

IMAGES_SPEC = tf.TensorSpec([None, ALIGNED_SIZE, ALIGNED_SIZE, 3], tf.uint8, name=IMAGES_INPUT)
EXAMPLES_SPEC = tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)
RAW_IMAGES_SPEC = tf.TensorSpec([None, None, None, 3], tf.uint8, name=IMAGES_INPUT)
RAW_LANDMARKS_SPEC = tf.TensorSpec([None, 2 * NUM_LANDMARKS], tf.float32, name=LANDMARKS_INPUT)


def alignment_matrices(landmarks: tf.Tensor) -> tf.Tensor:
    """(B, 98) raw-pixel landmarks -> (B, 2, 3) float64 similarity matrices, raw -> aligned pixels:
    pipeline.align.alignment_matrix in tensor form (eye centres levelled, the box of five points
    enlarged BOX_ENLARGE times and centred). Degenerate landmarks give non-finite matrices."""
    points = tf.reshape(tf.cast(landmarks, tf.float64), [-1, NUM_LANDMARKS, 2])
    left = tf.reduce_mean(tf.gather(points, LEFT_EYE, axis=1), axis=1)
    right = tf.reduce_mean(tf.gather(points, RIGHT_EYE, axis=1), axis=1)
    delta = right - left
    direction = delta / tf.norm(delta, axis=1, keepdims=True)
    cos, sin = direction[:, 0], direction[:, 1]
    rotation = tf.stack([tf.stack([cos, sin], -1), tf.stack([-sin, cos], -1)], axis=1)  # (B, 2, 2)
    five = tf.concat([left[:, None], right[:, None],
                      tf.gather(points, [NOSE_TIP, *MOUTH_CORNERS], axis=1)], axis=1)
    rotated = tf.einsum("bij,bpj->bpi", rotation, five)
    low, high = tf.reduce_min(rotated, axis=1), tf.reduce_max(rotated, axis=1)
    half = 0.5 * BOX_ENLARGE * tf.reduce_max(high - low, axis=1)
    scale = (ALIGNED_SIZE - 1) / 2 / half
    shift = scale[:, None] * (half[:, None] - (low + high) / 2)
    return tf.concat([scale[:, None, None] * rotation, shift[:, :, None]], axis=2)


def invert_similarity(matrices: tf.Tensor) -> tf.Tensor:
    """(B, 2, 3) inverses of similarity matrices [s R | t]: [R^T / s | -R^T t / s]."""
    linear, shift = matrices[:, :, :2], matrices[:, :, 2:]
    scale_squared = tf.linalg.det(linear)[:, None, None]
    inverse = tf.linalg.matrix_transpose(linear) / scale_squared
    return tf.concat([inverse, -inverse @ shift], axis=2)


def transform_landmarks(matrices: tf.Tensor, landmarks: tf.Tensor) -> tf.Tensor:
    """(B, 98) landmarks through (B, 2, 3) affine matrices."""
    points = tf.reshape(tf.cast(landmarks, matrices.dtype), [-1, NUM_LANDMARKS, 2])
    moved = tf.einsum("bij,bpj->bpi", matrices[:, :, :2], points) + matrices[:, None, :, 2]
    return tf.reshape(moved, [-1, 2 * NUM_LANDMARKS])


def align_in_graph(images: tf.Tensor, landmarks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Raw uint8 (B, H, W, 3) frames + (B, 98) raw landmarks -> ((B, 200, 200, 3) uint8 aligned
    faces, (B, 2, 3) raw -> aligned matrices), as pipeline.align.align_face warps them."""
    matrices = alignment_matrices(landmarks)
    inverse = invert_similarity(matrices)   # the warp reads output pixel -> input pixel
    transforms = tf.concat([tf.reshape(inverse, [-1, 6]), tf.zeros_like(inverse[:, 0, :2])], axis=1)
    aligned = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(images, tf.float32), transforms=tf.cast(transforms, tf.float32),
        output_shape=[ALIGNED_SIZE, ALIGNED_SIZE], fill_value=float(BORDER_VALUE),
        interpolation="BILINEAR", fill_mode="CONSTANT")
    aligned = tf.cast(tf.clip_by_value(tf.round(aligned), 0, 255), tf.uint8)
    return tf.ensure_shape(aligned, [None, ALIGNED_SIZE, ALIGNED_SIZE, 3]), matrices


def make_serving_functions(model, threshold: float = 0.5):
    """(serve_images, serve_examples): the two signatures' functions. serve_images is one
    tf.function that the other signatures call, so the network is traced once for all three
    (tracing the network took ~5 s each time; it was traced 8 times per export)."""
    crop = int(model.config.crop_size)
    num_aus = int(model.config.num_aus)
    threshold = float(threshold)
    image_feature = {"image": feature_spec(num_aus)["image"]}

    @tf.function(input_signature=[IMAGES_SPEC])
    def serve_images(images):
        output = model(center_crop_images(images, crop), training=False)
        probability = tf.cast(output["au_probability"], tf.float32)
        return {
            "au_probability": probability,
            "au_present": tf.cast(probability >= threshold, tf.int32),
            "landmarks": crop_landmarks_to_aligned(output["landmarks"], crop),
        }

    def serve_examples(examples):
        # Same decoding as schemas.example.parse_examples, reading the image feature only.
        jpegs = tf.io.parse_example(examples, image_feature)["image"]
        images = tf.map_fn(
            lambda jpeg: tf.ensure_shape(tf.io.decode_jpeg(jpeg, channels=3),
                                         [ALIGNED_SIZE, ALIGNED_SIZE, 3]),
            jpegs, fn_output_signature=tf.TensorSpec([ALIGNED_SIZE, ALIGNED_SIZE, 3], tf.uint8))
        return serve_images(images)

    return serve_images, serve_examples


def make_raw_images_function(serve_images):
    """The raw_images signature's function: align in the graph, serve, landmarks back to raw."""
    def serve_raw_images(images, landmarks):
        aligned, matrices = align_in_graph(images, landmarks)
        outputs = serve_images(aligned)
        raw = transform_landmarks(invert_similarity(matrices), outputs["landmarks"])
        return {**outputs, "landmarks": tf.cast(raw, tf.float32)}

    return serve_raw_images


def backbone_only(model):
    """`model` without RTATL's auxiliary heads (training only): the same JaaNet (config, name,
    dtype policy) without auxiliary tasks, holding `model`'s weights; `model` itself when it
    has no heads. A tensor input gives the same outputs either way."""
    if not model.config.auxiliary:
        return model
    import keras

    from components.train.transfer import copy_backbone
    # Rebuilt as keras.models.load_model builds a model, so that its variables (and those of
    # the SavedModel) are named as a loaded model's; not compiled (serving only).
    settings = keras.saving.serialize_keras_object(model)
    settings.pop("compile_config", None)
    settings["config"]["config"] = {**settings["config"]["config"], "auxiliary": []}
    backbone = keras.saving.deserialize_keras_object(settings)
    copy_backbone(model, backbone)
    return backbone


def write_saved_model(model, path, threshold: float = 0.5) -> None:
    """Write `model`'s backbone (backbone_only) with its three signatures as a SavedModel into
    `path` (a version folder): a model trained with auxiliary heads serves without them, and its
    SavedModel holds the same variables as one trained without."""
    import keras

    model = backbone_only(model)
    serve_images, serve_examples = make_serving_functions(model, threshold)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(DEFAULT_SIGNATURE, serve_images, input_signature=[IMAGES_SPEC])
    archive.add_endpoint(EXAMPLES_SIGNATURE, serve_examples, input_signature=[EXAMPLES_SPEC])
    archive.add_endpoint(RAW_SIGNATURE, make_raw_images_function(serve_images),
                         input_signature=[RAW_IMAGES_SPEC, RAW_LANDMARKS_SPEC])
    archive.write_out(str(path), verbose=False)
