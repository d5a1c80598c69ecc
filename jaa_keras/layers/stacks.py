"""The high-level feature stacks of the alignment, global and local AU branches (FACTS section 5)."""
import keras
from keras import layers, ops

from jaa_keras.layers.common import batch_norm, grouped_conv


@keras.saving.register_keras_serializable(package="jaa_keras")
class FeatureStacks(layers.Layer):
    """`stacks` independent copies of [3x3 conv-BN-ReLU x2, 2x2 max-pool] per entry of `channels`.

    Input and output are in the grouped layout (B, H, W, stacks*C): stack g reads channel group g
    and has its own weights. One stack is the plain network of one branch; the AU branches run as
    one stack per AU, a grouped convolution instead of a loop of separate stacks.
    """

    def __init__(self, channels, stacks: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.channels = tuple(channels)
        self.stacks = stacks
        self.convs, self.norms = [], []
        for level, width in enumerate(self.channels):
            for repeat in range(2):
                suffix = f"{level + 1}_{repeat + 1}"
                self.convs.append(grouped_conv(width, stacks, f"conv{suffix}"))
                self.norms.append(batch_norm(f"norm{suffix}"))
        self.pool = layers.MaxPooling2D(2)

    @property
    def groups(self) -> int:
        return self.stacks

    def build(self, input_shape):
        batch, height, width, _ = input_shape
        shape = input_shape
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            conv.build(shape)
            shape = (batch, height, width, self.stacks * self.channels[i // 2])
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
        return (batch, height, width, self.stacks * self.channels[-1])

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "stacks": self.stacks}
