"""RTATL's auxiliary heads: RoI inpainting from the region features and single-image optical flow
from the global features (docs/network.md, "Auxiliary heads"). They train beside the supervised
heads on auxiliary faces and are dropped at test time; both outputs are float32 under any dtype
policy (the losses compare them with pixel values and pixel displacements).
"""
import keras
import tensorflow as tf
from keras import layers, ops

from jaa_keras.layers.common import batch_norm, conv3x3
from jaa_keras.layers.initialization import build_initialized


def resize_bilinear(x, size: int):
    """Bilinear resize to size x size, computed in float32 (TensorFlow's bilinear resize returns
    float32 anyway and has no bfloat16 gradient on every device), back in x's dtype."""
    resized = tf.image.resize(tf.cast(x, tf.float32), (size, size), method="bilinear")
    return tf.cast(resized, x.dtype)


class _ConvBlocks(layers.Layer):
    """3x3 conv-BN-ReLU blocks, each followed by a bilinear resize to the side `_sizes` gives
    it, then a 3x3 convolution to `outputs` channels in float32. `channels`: the blocks' widths.
    """

    def __init__(self, channels, outputs: int, initialization: str = "caffe", **kwargs):
        super().__init__(**kwargs)
        self.channels = tuple(channels)
        self.outputs = outputs
        self.initialization = initialization

    def _sizes(self, input_size: int) -> list[int]:
        raise NotImplementedError

    def build(self, input_shape):
        # The convolutions are made here, not in __init__: a Keras initializer draws its seed when
        # made, and JaaNet makes its heads before building the backbone, whose weights for a
        # seed must not depend on whether heads exist. They take this layer's dtype policy, which
        # the global one may no longer be.
        policy = self.dtype_policy
        self.convs = [conv3x3(width, 1, name=f"conv{i + 1}", dtype=policy)
                      for i, width in enumerate(self.channels)]
        self.norms = [batch_norm(f"norm{i + 1}", dtype=policy) for i in range(len(self.channels))]
        self.output_conv = conv3x3(self.outputs, 1, name="output", dtype="float32")
        batch, size, _, _ = input_shape
        shape = input_shape
        for conv, norm, resized in zip(self.convs, self.norms, self._sizes(size)):
            build_initialized(conv, shape, self.initialization)
            norm.build((batch, size, size, conv.filters))
            size = resized
            shape = (batch, size, size, conv.filters)
        build_initialized(self.output_conv, shape, self.initialization)

    def call(self, x, training=None):
        for conv, norm, size in zip(self.convs, self.norms, self._sizes(x.shape[1])):
            x = ops.relu(norm(conv(x), training=training))
            if x.shape[1] != size:
                x = resize_bilinear(x, size)
        return self.output_conv(x)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels,
                "initialization": self.initialization}


@keras.saving.register_keras_serializable(package="jaa_keras")
class InpaintingDecoder(_ConvBlocks):
    """Region features (B, crop/4, crop/4, 8c) -> the face (B, crop, crop, 3) in [-1, 1].

    [3x3 conv-BN-ReLU, 2x bilinear upsampling] for each entry of `channels` (two: crop/4 ->
    crop), then a 3x3 convolution to RGB and tanh, in float32. Small on purpose: what the masked
    squares held must come from the backbone's features, not from the decoder.
    `initialization`: how the convolution weights are drawn (jaa_keras.layers.initialization).
    """

    def __init__(self, channels=(32, 16), initialization: str = "caffe", **kwargs):
        super().__init__(channels, 3, initialization, **kwargs)

    def _sizes(self, input_size: int) -> list[int]:
        return [input_size * 2 ** (i + 1) for i in range(len(self.channels))]

    def call(self, features, training=None):
        return ops.tanh(super().call(features, training=training))

    def compute_output_shape(self, input_shape):
        batch, size = input_shape[0], input_shape[1] * 2 ** len(self.channels)
        return batch, size, size, 3


@keras.saving.register_keras_serializable(package="jaa_keras")
class FlowHead(_ConvBlocks):
    """Global features (B, s, s, 20c) -> flow (B, output_size, output_size, 2), the
    displacement (dx, dy) in crop pixels of each crop/4 cell towards a nearby frame.

    A 3x3 conv-BN-ReLU per entry of `channels`; the first one's output is resized bilinearly to
    exactly `output_size` (crop/4: the global map's side s is 5 at crop 176, 3 with the Caffe
    release's stacks, so no power of two reaches 44), the others keep that size; then a 3x3
    convolution to (dx, dy), linear, in float32. `initialization`: how the convolution weights
    are drawn.
    """

    def __init__(self, output_size: int, channels=(64, 32), initialization: str = "caffe",
                 **kwargs):
        super().__init__(channels, 2, initialization, **kwargs)
        self.output_size = output_size

    def _sizes(self, input_size: int) -> list[int]:
        return [self.output_size] * len(self.channels)

    def compute_output_shape(self, input_shape):
        return input_shape[0], self.output_size, self.output_size, 2

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size}
