"""The forms the network does not use, kept to measure against (bench_network) and to check the
used forms against (tests/test_network.py).

- `patchwise_loop`: a region layer's per-patch BN-ReLU-conv as the straightforward loop over
  patches, reading each patch's slice of a `PatchwiseConv`'s grouped weights.
- `au_branches_grouped`: all AU branches (refinement and feature stack) as grouped convolutions
  over AU-major channel groups, built from the per-AU layers' weights.
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


class au_branches_grouped(tf.Module):  # noqa: N801 - used like a function that builds a callable
    """Every AU's refinement and feature stack as one grouped convolution per level (training
    mode), with weights concatenated from the per-AU layers; the local features are summed."""

    def __init__(self, refines, stacks):
        super().__init__()
        concat = lambda weights: tf.Variable(tf.concat([w.numpy() for w in weights], -1))  # noqa: E731
        self.groups = len(stacks)
        self.refine = [(concat([r.convs[i].kernel for r in refines]), concat([r.convs[i].bias for r in refines]),
                        concat([r.norms[i].gamma for r in refines]), concat([r.norms[i].beta for r in refines]))
                       for i in range(3)]
        self.refine_out = (concat([r.output_conv.kernel for r in refines]),
                           concat([r.output_conv.bias for r in refines]))
        self.stack = [(concat([s.convs[i].kernel for s in stacks]), concat([s.convs[i].bias for s in stacks]),
                       concat([s.norms[i].gamma for s in stacks]), concat([s.norms[i].beta for s in stacks]))
                      for i in range(len(stacks[0].convs))]

    def __call__(self, inputs):
        maps, features = inputs
        x = maps
        for kernel, bias, gamma, beta in self.refine:
            x = tf.nn.relu(batch_norm(tf.nn.conv2d(x, kernel, 1, "VALID") + bias, gamma, beta))
        kernel, bias = self.refine_out
        refined = tf.sigmoid(tf.nn.conv2d(x, kernel, 1, "VALID") + bias)
        x = tf.concat([features * refined[..., g:g + 1] for g in range(self.groups)], -1)
        for i, (kernel, bias, gamma, beta) in enumerate(self.stack):
            x = tf.nn.relu(batch_norm(tf.nn.conv2d(x, kernel, 1, "SAME") + bias, gamma, beta))
            if i % 2:
                x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        return tf.add_n(tf.split(x, self.groups, axis=-1))
