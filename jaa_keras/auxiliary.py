"""Inputs of RTATL's RoI inpainting task: which pixels of an auxiliary face are masked.

The squares sit on the AU centres (jaa_keras.au_centres), as the attention maps do, so the
inpainting decoder learns to recover the regions where the AUs show from the rest of the face
(docs/network.md, "Auxiliary heads"). The input pipeline sets the masked pixels of the input to
0, the grey of [-1, 1], and keeps the unmasked face as the target.
"""
import tensorflow as tf

from jaa_keras.au_centres import au_centres
from schemas.face import NUM_LANDMARKS

MAX_MASKED_AUS = 3  # a face loses the regions of 1 to 3 of its AUs


def roi_mask(landmarks, aus, crop_size: int, patch: float, seed):
    """The inpainting mask of ONE face: (crop_size, crop_size, 1) float32, 1 on masked pixels.

    landmarks: (2 * NUM_LANDMARKS,) x0, y0, x1, ... in crop pixels (pixel centres at integer
    coordinates, as the input pipeline keeps them); aus: the AUs whose centres may be masked;
    patch: the side of a square relative to crop_size (config.inpainting_patch); seed: a
    stateless (2,) int seed. A random 1 to MAX_MASKED_AUS of the AUs (at most all of them) are
    drawn; each loses both of its centres' squares: a pixel is masked when its centre lies
    strictly inside a square of side patch * crop_size centred there (squares are clipped at
    the border). Pure TensorFlow without control flow, the same mask for the same seed: it runs
    inside tf.data map functions.
    """
    aus = tuple(aus)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    count = tf.random.stateless_uniform([], seeds[0], 1, min(MAX_MASKED_AUS, len(aus)) + 1,
                                        tf.int32)
    # Rank of each AU in a random order; the `count` first are masked.
    rank = tf.argsort(tf.argsort(tf.random.stateless_uniform([len(aus)], seeds[1])))
    chosen = rank < count                                                   # (n_au,)
    points = tf.reshape(tf.cast(landmarks, tf.float32), [1, 2 * NUM_LANDMARKS])
    centres = au_centres(points, aus)[0]                                    # (n_au, 2, 2)
    grid = tf.range(crop_size, dtype=tf.float32)
    half = patch * crop_size / 2
    inside_x = tf.abs(grid - centres[..., 0:1]) < half                      # (n_au, 2, crop)
    inside_y = tf.abs(grid - centres[..., 1:2]) < half
    squares = tf.logical_and(inside_y[..., :, None], inside_x[..., None, :])
    squares = tf.logical_and(squares, chosen[:, None, None, None])
    return tf.cast(tf.reduce_any(squares, axis=[0, 1]), tf.float32)[..., None]
