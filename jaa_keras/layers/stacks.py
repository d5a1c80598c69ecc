"""The high-level feature stack of the alignment, global and local AU branches (docs/network.md)."""
import keras
from keras import layers, ops

from jaa_keras.config import FEATURE_STACKS, stack_output_size
from jaa_keras.layers.common import batch_norm, conv3x3
from jaa_keras.layers.initialization import build_initialized

# Caffe pads its stride-2 convolution by one pixel on every side; "same" would pad only after.
_CAFFE_PADDING = ((0, 0), (1, 1), (1, 1), (0, 0))


@keras.saving.register_keras_serializable(package="jaa_keras")
class FeatureStack(layers.Layer):
    """[3x3 conv-BN-ReLU x2, 2x2 max-pool] for each entry of `channels`.

    `layout` "paper": every convolution has stride 1 and the poolings round down, as the paper's
    text (P(l/4, l/4, 3c), ...) and the PyTorch release have it (44 -> 5 at crop 176). "caffe": the
    first convolution has stride 2 and the poolings round up, as in the Caffe release's
    BP4D_train_val.prototxt (conv31: stride 2, padding 1): 44 -> 3.
    `groups` > 1: that many independent stacks side by side, one per channel group of the input
    (the local AU branches, one group per AU); every weight then holds the groups one after
    another on its last axis, and each group's kernel is drawn as its own stack's would be.
    `initialization`: how the convolution weights are drawn (jaa_keras.layers.initialization).
    """

    def __init__(self, channels, initialization: str = "caffe", groups: int = 1,
                 layout: str = "paper", **kwargs):
        super().__init__(**kwargs)
        if layout not in FEATURE_STACKS:
            raise ValueError(f"layout must be one of {FEATURE_STACKS}, got {layout!r}")
        self.channels = tuple(channels)
        self.initialization = initialization
        self.groups = groups
        self.layout = layout
        caffe = layout == "caffe"
        self.convs, self.norms = [], []
        for level, width in enumerate(self.channels):
            for repeat in range(2):
                suffix = f"{level + 1}_{repeat + 1}"
                strided = caffe and level == repeat == 0
                self.convs.append(conv3x3(width, groups, name=f"conv{suffix}",
                                          padding="valid" if strided else "same",
                                          strides=2 if strided else 1))
                self.norms.append(batch_norm(f"norm{suffix}"))
        self.pool = layers.MaxPooling2D(2, padding="same" if caffe else "valid")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            if conv.strides == (2, 2):
                shape = (shape[0], shape[1] + 2, shape[2] + 2, shape[3])
            build_initialized(conv, shape, self.initialization)
            shape = conv.compute_output_shape(shape)
            norm.build(shape)
            if i % 2:
                shape = self.pool.compute_output_shape(shape)

    def call(self, x, training=None):
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            if conv.strides == (2, 2):
                x = ops.pad(x, _CAFFE_PADDING)
            x = ops.relu(norm(conv(x), training=training))
            if i % 2:
                x = self.pool(x)
        return x

    def compute_output_shape(self, input_shape):
        batch, height, _, _ = input_shape
        side = stack_output_size(height, self.layout, len(self.channels))
        return (batch, side, side, self.groups * self.channels[-1])

    def get_config(self):
        return {**super().get_config(), "channels": self.channels,
                "initialization": self.initialization, "groups": self.groups,
                "layout": self.layout}
