"""Region learning: convolutions with separate weights for each patch of the face (docs/network.md)."""
import keras
from keras import layers, ops

from jaa_keras.layers.common import batch_norm, conv3x3
from jaa_keras.layers.grouping import from_patch_groups, to_patch_groups
from jaa_keras.layers.initialization import build_initialized


@keras.saving.register_keras_serializable(package="jaa_keras")
class PatchwiseConv(layers.Layer):
    """BN -> ReLU -> 3x3 conv, each with its own weights in every cell of a grid x grid partition.

    Equivalent to cutting the map into patches and running grid*grid independent
    BN-ReLU-conv blocks (zero padding at each patch border), computed as one grouped convolution;
    each patch's kernel is drawn as that patch's own convolution's would be (`initialization`).
    """

    def __init__(self, grid: int, filters: int, initialization: str = "caffe", **kwargs):
        super().__init__(**kwargs)
        self.grid = grid
        self.filters = filters
        self.initialization = initialization
        self.norm = batch_norm("norm")
        self.conv = conv3x3(filters, grid * grid, "conv")

    def build(self, input_shape):
        batch, height, width, channels = input_shape
        if height % self.grid or width % self.grid:
            raise ValueError(f"{self.name}: a {height}x{width} map does not split into "
                             f"{self.grid}x{self.grid} equal patches")
        grouped = (batch, height // self.grid, width // self.grid, self.grid * self.grid * channels)
        self.norm.build(grouped)
        build_initialized(self.conv, grouped, self.initialization)

    def call(self, x, training=None):
        x = to_patch_groups(x, self.grid)
        x = self.conv(ops.relu(self.norm(x, training=training)))
        return from_patch_groups(x, self.grid)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], self.filters)

    def get_config(self):
        return {**super().get_config(), "grid": self.grid, "filters": self.filters,
                "initialization": self.initialization}


def hierarchical_branches(channels: int) -> tuple[tuple[int, int], ...]:
    """(grid, filters) of the hierarchical multi-scale layer: 8x8 to C/2, 4x4 to C/4, 2x2 to C/4."""
    return (8, channels // 2), (4, channels // 4), (2, channels // 4)


def plain_region_branches(channels: int) -> tuple[tuple[int, int], ...]:
    """DRML's region layer: a single 8x8 partition keeping all C channels (the paper's ablation)."""
    return ((8, channels),)


@keras.saving.register_keras_serializable(package="jaa_keras")
class RegionLayer(layers.Layer):
    """conv3x3 -> patch-wise branches, each reading the previous one's output -> concat
    + the conv's output -> BN -> ReLU -> 2x2 max-pool.

    With `hierarchical_branches` this is the paper's hierarchical multi-scale region layer; with
    `plain_region_branches` it is DRML's region layer. `initialization`: how the convolution
    weights are drawn (jaa_keras.layers.initialization).
    """

    def __init__(self, channels: int, branches, initialization: str = "caffe", **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.initialization = initialization
        self.branches = tuple(tuple(b) for b in branches)
        if sum(filters for _, filters in self.branches) != channels:
            raise ValueError(f"branch widths {self.branches} must add up to {channels} channels")
        self.entry = layers.Conv2D(channels, 3, padding="same", name="entry")
        self.patchwise = [PatchwiseConv(grid, filters, initialization, name=f"branch{i + 1}")
                          for i, (grid, filters) in enumerate(self.branches)]
        self.norm = batch_norm("norm")
        self.pool = layers.MaxPooling2D(2)

    def build(self, input_shape):
        build_initialized(self.entry, input_shape, self.initialization)
        shape = (*input_shape[:3], self.channels)
        for branch in self.patchwise:
            branch.build(shape)
            shape = branch.compute_output_shape(shape)
        self.norm.build((*input_shape[:3], self.channels))

    def call(self, x, training=None):
        x = self.entry(x)
        outputs, branch_input = [], x
        for branch in self.patchwise:
            branch_input = branch(branch_input, training=training)
            outputs.append(branch_input)
        merged = outputs[0] if len(outputs) == 1 else ops.concatenate(outputs, axis=-1)
        return self.pool(ops.relu(self.norm(merged + x, training=training)))

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        return (batch, height // 2, width // 2, self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "branches": self.branches,
                "initialization": self.initialization}
