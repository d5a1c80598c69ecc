"""Building blocks shared by the layers: the normalisation settings and the (grouped) 3x3 convolution."""
import functools

import keras
import tensorflow as tf
from keras import layers

# PyTorch's BatchNorm2d defaults, as in the authors' release (Keras momentum = 1 - PyTorch's 0.1).
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


@functools.lru_cache(maxsize=1)
def _gpu_present() -> bool:
    return bool(tf.config.list_logical_devices("GPU"))


@keras.saving.register_keras_serializable(package="jaa_keras")
class FusedBatchNorm(layers.BatchNormalization):
    """BatchNormalization on TensorFlow's fused kernel: the same normalisation as Keras's, 2-2.5x
    faster forward and backward on CPU here (BENCHMARKS.md). Channels last.

    The moving variance is updated with the batch's unbiased variance, as PyTorch (and so the
    authors' release) does; Keras's own layer uses the biased one.
    """

    def call(self, inputs, training=None, mask=None):
        compute_dtype = inputs.dtype
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, self.gamma, self.beta, epsilon=self.epsilon, is_training=True)
            self.moving_mean.assign(self.momentum * self.moving_mean + (1 - self.momentum) * mean)
            self.moving_variance.assign(
                self.momentum * self.moving_variance + (1 - self.momentum) * variance)
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, self.gamma, self.beta, mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, is_training=False)
        return tf.cast(outputs, compute_dtype)


def batch_norm(name: str, dtype=None) -> FusedBatchNorm:
    return FusedBatchNorm(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="jaa_keras")
class GroupedConv2D(layers.Conv2D):
    """Conv2D whose grouped case runs on TensorFlow's own kernel (oneDNN on CPU, cuDNN on GPU).

    Keras 3 sends every grouped convolution on TensorFlow through XLA, which on CPU made a training
    step of this network many times slower (BENCHMARKS.md); tf.nn.conv2d computes the same values.
    """

    def convolution_op(self, inputs, kernel):
        compute_dtype = inputs.dtype
        if compute_dtype in (tf.bfloat16, tf.float16) and not _gpu_present():
            # TensorFlow has no CPU gradient for a bfloat16 grouped convolution (training under
            # mixed_bfloat16 stopped at its first step), nor for a float16 one where oneDNN lacks
            # float16 (AMD EPYC without AVX-512 here), so on a CPU these run in float32.
            inputs, kernel = tf.cast(inputs, tf.float32), tf.cast(kernel, tf.float32)
        outputs = tf.nn.conv2d(inputs, kernel, strides=self.strides,
                               padding=self.padding.upper(), dilations=self.dilation_rate)
        return tf.cast(outputs, compute_dtype)

    def call(self, inputs):
        # A plain add, not Keras's BiasAdd: TensorFlow's graph optimiser fuses Conv2D + BiasAdd
        # into a kernel that refuses grouped convolutions on CPUs without oneDNN (AMD EPYC here),
        # so every graph-mode call (predict, serving) failed there.
        outputs = self.convolution_op(inputs, self.kernel)
        if self.use_bias:
            outputs = tf.add(outputs, tf.cast(self.bias, outputs.dtype))
        return outputs if self.activation is None else self.activation(outputs)


def conv3x3(filters_per_group: int, groups: int, name: str, padding: str = "same",
            strides: int = 1, dtype=None) -> layers.Conv2D:
    """A 3x3 convolution; with `groups` > 1, that many independent ones run as one grouped
    convolution (group g reads channel group g and writes filters g*f .. (g+1)*f - 1)."""
    if groups == 1:
        return layers.Conv2D(filters_per_group, 3, strides=strides, padding=padding, name=name,
                             dtype=dtype)
    return GroupedConv2D(filters_per_group * groups, 3, strides=strides, padding=padding,
                         groups=groups, name=name, dtype=dtype)
