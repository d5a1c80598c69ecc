"""The serving graph: what TF Serving runs, with the evaluation preprocessing inside it.

Two signatures over one trained JaaNet:
  serving_default   images   uint8 (B, 200, 200, 3): aligned RGB faces, as the preprocess stage
                             writes them (schemas.example.ALIGNED_SIZE)
  examples          examples string (B,): serialized tf.Example protos in the schema
                             (schemas.example); only the "image" feature is read, so label-free
                             examples work as well as the training records
Both return
  au_probability  float32 (B, n_au)  P(AU present), AU order of the model (model card / metadata)
  au_present      int32   (B, n_au)  1 where au_probability >= the exported threshold, else 0
                                     (the label code of schemas.example: 1 present, 0 absent)
  landmarks       float32 (B, 98)    x0, y0, x1, y1, ... in pixels of the 200 x 200 aligned face

The centre crop (and the resize for crops smaller than the paper's 176), the pixel scaling and the
mapping of landmarks back to the aligned frame are the input pipeline's own tensor functions
(components.train.input_pipeline.center_crop_images / crop_landmarks_to_aligned), so serving
cannot drift from evaluation.
"""
from __future__ import annotations

import tensorflow as tf

from components.train.input_pipeline import center_crop_images, crop_landmarks_to_aligned
from schemas.example import ALIGNED_SIZE, feature_spec

DEFAULT_SIGNATURE = "serving_default"
EXAMPLES_SIGNATURE = "examples"
IMAGES_INPUT = "images"
EXAMPLES_INPUT = "examples"
OUTPUTS = ("au_probability", "au_present", "landmarks")

IMAGES_SPEC = tf.TensorSpec([None, ALIGNED_SIZE, ALIGNED_SIZE, 3], tf.uint8, name=IMAGES_INPUT)
EXAMPLES_SPEC = tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)


def make_serving_functions(model, threshold: float = 0.5):
    """(serve_images, serve_examples): plain Python functions to trace as the two signatures."""
    crop = int(model.config.crop_size)
    num_aus = int(model.config.num_aus)
    threshold = float(threshold)
    image_feature = {"image": feature_spec(num_aus)["image"]}

    def serve_images(images):
        images = tf.ensure_shape(images, IMAGES_SPEC.shape)
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


def write_saved_model(model, path, threshold: float = 0.5) -> None:
    """Write `model` with both signatures as a SavedModel into `path` (a version folder)."""
    import keras

    serve_images, serve_examples = make_serving_functions(model, threshold)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(DEFAULT_SIGNATURE, serve_images, input_signature=[IMAGES_SPEC])
    archive.add_endpoint(EXAMPLES_SIGNATURE, serve_examples, input_signature=[EXAMPLES_SPEC])
    archive.write_out(str(path), verbose=False)
