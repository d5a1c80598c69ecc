"""The forms the network does not use, kept to measure against (bench_network) and to check the
used forms against (tests/jaa_keras/test_network.py).

- `patchwise_loop`: a region layer's per-patch BN-ReLU-conv as the straightforward loop over
  patches, reading each patch's slice of a `PatchwiseConv`'s grouped weights.
- `au_branches_loop`: the AU branches (refinement and feature stack) as a loop over AUs, each
  reading its AU's slice of `AdaptiveAttention`'s grouped weights.
"""
import tensorflow as tf

BN_EPSILON = 1e-5


def batch_norm(x, gamma, beta, mean=None, variance=None):
    """Training-mode statistics when no moving statistics are given."""
    if mean is None:
        mean, variance = tf.nn.moments(x, axes=[0, 1, 2])
    return tf.nn.batch_normalization(x, mean, variance, beta, gamma, BN_EPSILON)


def group_slice(weight, group: int, width: int):
    """One group's slice of a grouped weight (groups side by side on the last axis)."""
    return weight[..., group * width:(group + 1) * width]


def patchwise_loop(layer, x, training: bool):
    """`PatchwiseConv` computed patch by patch with plain convolutions."""
    grid, channels, filters = layer.grid, x.shape[-1], layer.filters
    size = x.shape[1] // grid
    norm, conv = layer.norm, layer.conv
    rows = []
    for i in range(grid):
        row = []
        for j in range(grid):
            g = i * grid + j
            statistics = ((None, None) if training else
                          (group_slice(norm.moving_mean, g, channels),
                           group_slice(norm.moving_variance, g, channels)))
            patch = x[:, i * size:(i + 1) * size, j * size:(j + 1) * size]
            patch = tf.nn.relu(batch_norm(patch, group_slice(norm.gamma, g, channels),
                                          group_slice(norm.beta, g, channels), *statistics))
            row.append(tf.nn.conv2d(patch, group_slice(conv.kernel, g, filters), 1, "SAME")
                       + group_slice(conv.bias, g, filters))
        rows.append(tf.concat(row, axis=2))
    return tf.concat(rows, axis=1)


def au_branches_loop(attention, maps, features):
    """`AdaptiveAttention`'s grouped AU branches computed AU by AU with plain convolutions on
    each AU's slice of the weights, training-mode BatchNorm on TensorFlow's fused kernel (as the
    used form's), the local features summed. Returns (refined maps, local features)."""
    refine, stack = attention.refine, attention.local
    refined, local = [], []
    for g in range(len(attention.aus)):
        x = maps[..., g:g + 1]
        for conv, norm in zip(refine.convs, refine.norms):
            x = tf.nn.relu(_fused_norm(norm, _conv(conv, x, g, refine.filters, "VALID"), g,
                                       refine.filters))
        refined.append(tf.sigmoid(_conv(refine.output_conv, x, g, 1, "VALID")))
    for g in range(len(attention.aus)):
        x = features * refined[g]
        for i, (conv, norm) in enumerate(zip(stack.convs, stack.norms)):
            width = stack.channels[i // 2]
            x = tf.nn.relu(_fused_norm(norm, _conv(conv, x, g, width, "SAME"), g, width))
            if i % 2:
                x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        local.append(x)
    return tf.concat(refined, -1), tf.add_n(local)


def _conv(conv, x, group: int, width: int, padding: str):
    return (tf.nn.conv2d(x, group_slice(conv.kernel, group, width), 1, padding)
            + group_slice(conv.bias, group, width))


def _fused_norm(norm, x, group: int, width: int):
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, group_slice(norm.gamma, group, width),
                                               group_slice(norm.beta, group, width),
                                               epsilon=BN_EPSILON, is_training=True)
    return y
