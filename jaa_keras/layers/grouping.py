"""Layout changes that turn many small convolutions with their own weights into one grouped one.

A grid x grid partition of a (B, H, W, C) map becomes (B, H/grid, W/grid, grid*grid*C): each patch
is a channel group, so a grouped convolution gives every patch its own kernel with zero padding at
the patch border, and a BatchNormalization over the grouped channels gives every patch its own
statistics. oneDNN runs the grouped convolution at full speed; the equivalent loop of 84 small
convolutions per region layer does not (BENCHMARKS.md).
"""
from keras import ops


def to_patch_groups(x, grid: int):
    """(B, H, W, C) -> (B, H/grid, W/grid, grid*grid*C); patch (i, j) is group i*grid + j."""
    _, height, width, channels = x.shape
    h, w = height // grid, width // grid
    x = ops.reshape(x, (-1, grid, h, grid, w, channels))
    x = ops.transpose(x, (0, 2, 4, 1, 3, 5))
    return ops.reshape(x, (-1, h, w, grid * grid * channels))


def from_patch_groups(x, grid: int):
    """Inverse of `to_patch_groups`."""
    _, h, w, grouped_channels = x.shape
    channels = grouped_channels // (grid * grid)
    x = ops.reshape(x, (-1, h, w, grid, grid, channels))
    x = ops.transpose(x, (0, 3, 1, 4, 2, 5))
    return ops.reshape(x, (-1, grid * h, grid * w, channels))

