"""Layout changes that turn many small convolutions with their own weights into one grouped one.

A grid x grid partition of a (B, H, W, C) map becomes (B, H/grid, W/grid, grid*grid*C): each patch
is a channel group, so a grouped convolution gives every patch its own kernel with zero padding at
the patch border, and a BatchNormalization over the grouped channels gives every patch its own
statistics. The same trick runs the AU branches side by side (`stack_groups`). oneDNN runs grouped
convolutions at full speed; the equivalent Python loop of small convolutions does not
(see BENCHMARKS.md).
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


def stack_groups(x):
    """(B, H, W, G, C) -> (B, H, W, G*C): branch g becomes channel group g."""
    _, h, w, groups, channels = x.shape
    return ops.reshape(x, (-1, h, w, groups * channels))


def split_groups(x, groups: int):
    """(B, H, W, G*C) -> (B, H, W, G, C)."""
    _, h, w, grouped_channels = x.shape
    return ops.reshape(x, (-1, h, w, groups, grouped_channels // groups))
