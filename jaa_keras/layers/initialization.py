"""How the convolution and fully connected weights of a fresh network are drawn.

  "caffe"    the paper's own release: every convolution and fully connected layer N(0, 0.01)
             (standard deviation 0.01) weights, zero biases.
  "pytorch"  the authors' PyTorch release, which keeps PyTorch's defaults: weights and biases
             uniform in +-1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5) for the weights).
  "keras"    Keras' defaults: glorot_uniform weights, zero biases.

Keras' glorot_uniform takes a grouped convolution's fans from its whole kernel, so every group's
filters count in fan_out. Here each group's kernel is drawn as a separate convolution with the
group's own input and output channels would be (the patch-wise region convolutions are one
grouped convolution standing for many small ones).
"""
import math

from keras import initializers, layers

from jaa_keras.config import INITIALIZATIONS

CAFFE_STDDEV = 0.01


def _fans(layer, input_channels: int) -> tuple[int, int]:
    """(fan_in, fan_out) of one group of a Conv2D, or of a Dense layer."""
    if isinstance(layer, layers.Dense):
        return input_channels, layer.units
    groups = layer.groups
    receptive = math.prod(layer.kernel_size)
    return receptive * input_channels // groups, receptive * layer.filters // groups


def weight_initializers(scheme: str, fan_in: int, fan_out: int):
    """(kernel initializer, bias initializer) of `scheme` for a layer with these fans."""
    if scheme == "caffe":
        return initializers.RandomNormal(stddev=CAFFE_STDDEV), initializers.Zeros()
    if scheme == "pytorch":
        bound = 1.0 / math.sqrt(fan_in)
        return (initializers.RandomUniform(-bound, bound),
                initializers.RandomUniform(-bound, bound))
    if scheme == "keras":
        bound = math.sqrt(6.0 / (fan_in + fan_out))  # glorot_uniform with per-group fans
        return initializers.RandomUniform(-bound, bound), initializers.Zeros()
    raise ValueError(f"initialization must be one of {INITIALIZATIONS}, got {scheme!r}")


def build_initialized(layer, input_shape, scheme: str):
    """Build a Conv2D or Dense `layer` for `input_shape` with its weights drawn by `scheme`."""
    layer.kernel_initializer, layer.bias_initializer = weight_initializers(
        scheme, *_fans(layer, input_shape[-1]))
    layer.build(input_shape)
