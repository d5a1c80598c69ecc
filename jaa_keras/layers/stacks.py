"""The high-level feature stack of the alignment, global and local AU branches (docs/network.md)."""
import keras
from keras import layers, ops

from jaa_keras.layers.common import batch_norm, conv3x3
from jaa_keras.layers.initialization import build_initialized


@keras.saving.register_keras_serializable(package="jaa_keras")
class FeatureStack(layers.Layer):
    """[3x3 conv-BN-ReLU x2, 2x2 max-pool] for each entry of `channels` (floor pooling).

    `groups` > 1: that many independent stacks side by side, one per channel group of the input
    (the local AU branches, one group per AU); every weight then holds the groups one after
    another on its last axis, and each group's kernel is drawn as its own stack's would be.
    `initialization`: how the convolution weights are drawn (jaa_keras.layers.initialization).
    """

    def __init__(self, channels, initialization: str = "caffe", groups: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.channels = tuple(channels)
        self.initialization = initialization
        self.groups = groups
        self.convs, self.norms = [], []
        for level, width in enumerate(self.channels):
            for repeat in range(2):
                suffix = f"{level + 1}_{repeat + 1}"
                self.convs.append(conv3x3(width, groups, name=f"conv{suffix}"))
                self.norms.append(batch_norm(f"norm{suffix}"))
        self.pool = layers.MaxPooling2D(2)

    def build(self, input_shape):
        batch, height, width, _ = input_shape
        shape = input_shape
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            build_initialized(conv, shape, self.initialization)
            shape = (batch, height, width, self.groups * self.channels[i // 2])
            norm.build(shape)
            if i % 2:
                height, width = height // 2, width // 2
                shape = (batch, height, width, shape[-1])

    def call(self, x, training=None):
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = ops.relu(norm(conv(x), training=training))
            if i % 2:
                x = self.pool(x)
        return x

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        for _ in self.channels:
            height, width = height // 2, width // 2
        return (batch, height, width, self.groups * self.channels[-1])

    def get_config(self):
        return {**super().get_config(), "channels": self.channels,
                "initialization": self.initialization, "groups": self.groups}
