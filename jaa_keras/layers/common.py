"""Building blocks shared by the layers: the normalisation settings and the grouped convolution."""
import keras
import tensorflow as tf
from keras import layers

# PyTorch's BatchNorm2d defaults, as in the authors' release (Keras momentum = 1 - PyTorch's 0.1).
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def batch_norm(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


@keras.saving.register_keras_serializable(package="jaa_keras")
class GroupedConv2D(layers.Conv2D):
    """Conv2D whose grouped case runs on TensorFlow's own kernel (oneDNN on CPU, cuDNN on GPU).

    Keras 3 sends every grouped convolution on TensorFlow through XLA, which on CPU made a training
    step of this network many times slower (BENCHMARKS.md); tf.nn.conv2d computes the same values.
    """

    def convolution_op(self, inputs, kernel):
        return tf.nn.conv2d(inputs, kernel, strides=self.strides, padding=self.padding.upper(),
                            dilations=self.dilation_rate)


def grouped_conv(filters_per_group: int, groups: int, name: str) -> GroupedConv2D:
    """`groups` independent 3x3 convolutions run as one; group g reads and writes channel group g."""
    return GroupedConv2D(filters_per_group * groups, 3, padding="same", groups=groups, name=name)
