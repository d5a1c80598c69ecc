"""Building blocks shared by the layers: one place for the normalisation settings."""
from keras import layers

# PyTorch's BatchNorm2d defaults, as in the authors' release (Keras momentum = 1 - PyTorch's 0.1).
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def batch_norm(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def grouped_conv(filters_per_group: int, groups: int, name: str, padding: str = "same") -> layers.Conv2D:
    """`groups` independent 3x3 convolutions run as one; group g reads and writes channel group g."""
    return layers.Conv2D(filters_per_group * groups, 3, padding=padding, groups=groups, name=name)
