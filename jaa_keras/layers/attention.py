"""Adaptive attention learning: initial AU maps, their refinement, and the local AU features."""
import numpy as np
import keras
import tensorflow as tf
from keras import layers, ops

from jaa_keras.au_centres import au_centres, centre_rules
from jaa_keras.layers.common import batch_norm, conv3x3
from jaa_keras.layers.initialization import build_initialized
from jaa_keras.layers.stacks import FeatureStack


def enhance_gradient(x, factor: float):
    """Identity forward; the gradient flowing back through it is multiplied by `factor`.

    Placed on the path from the refined maps into the local AU branches only, so the gradient of
    E_au reaching the maps is scaled by lambda3 (paper Eq. 5) and that of E_r is not.
    """

    @tf.custom_gradient
    def scaled_identity(value):
        return tf.identity(value), lambda upstream: upstream * factor

    return scaled_identity(x)


@keras.saving.register_keras_serializable(package="jaa_keras")
class InitialAttentionMaps(layers.Layer):
    """AU attention maps drawn from landmarks (paper Eq. 3 as the released code draws them).

    Each AU centre, scaled to the map and rounded to a pixel, gets a (2*half+1)^2 box with
    v = 1 - manhattan_distance * xi / (map_size * zeta); zero elsewhere; the maximum where two boxes
    overlap. Returns the maps at `map_size` (input of the refinement) and nearest-neighbour
    resampled to `target_size` (the E_r target). No weights and no gradient.
    """

    def __init__(self, aus, crop_size: int, map_size: int, target_size: int,
                 zeta: float, xi: float, **kwargs):
        super().__init__(**kwargs)
        self.aus = tuple(aus)
        centre_rules(self.aus)  # fail early on an AU without a rule
        self.crop_size, self.map_size, self.target_size = crop_size, map_size, target_size
        self.zeta, self.xi = zeta, xi
        self.half_box = round((map_size - 1) / 2 * zeta)
        # PyTorch's nearest-neighbour resize: target pixel i reads source pixel floor(i * scale).
        self.target_index = np.floor(np.arange(target_size) * map_size / target_size).astype(np.int32)

    def call(self, landmarks):
        landmarks = ops.stop_gradient(ops.cast(landmarks, "float32"))
        centres = ops.round(au_centres(landmarks, self.aus) * (self.map_size / self.crop_size))
        grid = ops.arange(self.map_size, dtype="float32")
        dx = ops.abs(grid - centres[..., 0:1])  # (B, n_au, 2, map)
        dy = ops.abs(grid - centres[..., 1:2])
        inside = ops.logical_and(dy[..., :, None] <= self.half_box, dx[..., None, :] <= self.half_box)
        value = 1.0 - (dy[..., :, None] + dx[..., None, :]) * (self.xi / (self.map_size * self.zeta))
        maps = ops.max(ops.where(inside, value, 0.0), axis=2)  # (B, n_au, map, map)
        maps = ops.transpose(maps, (0, 2, 3, 1))
        target = ops.take(ops.take(maps, self.target_index, axis=1), self.target_index, axis=2)
        return maps, target

    def compute_output_shape(self, input_shape):
        batch, n = input_shape[0], len(self.aus)
        return (batch, self.map_size, self.map_size, n), (batch, self.target_size, self.target_size, n)

    def get_config(self):
        return {**super().get_config(), "aus": self.aus, "crop_size": self.crop_size,
                "map_size": self.map_size, "target_size": self.target_size,
                "zeta": self.zeta, "xi": self.xi}


@keras.saving.register_keras_serializable(package="jaa_keras")
class AttentionRefinement(layers.Layer):
    """An AU's map: three unpadded 3x3 conv-BN-ReLU and an unpadded 3x3 conv to one map, sigmoid.

    `groups` > 1: one independent refinement per input channel (one map per AU), computed as
    grouped convolutions; every weight holds the groups one after another on its last axis.
    The maps shrink by 8 (52 -> 44 at crop 176). Returns (logits, maps): the last convolution's
    output, from which E_r is taken (jaa_keras.losses), and its sigmoid. Both are float32 under
    any dtype policy (bfloat16 would round the map to 0 or 1 well before the logit saturates).
    `initialization`: how the convolution weights are drawn (jaa_keras.layers.initialization).
    """

    def __init__(self, filters: int, initialization: str = "caffe", groups: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.initialization = initialization
        self.groups = groups
        self.convs = [conv3x3(filters, groups, name=f"conv{i + 1}", padding="valid")
                      for i in range(3)]
        self.norms = [batch_norm(f"norm{i + 1}") for i in range(3)]
        self.output_conv = conv3x3(1, groups, name="conv4", padding="valid", dtype="float32")

    def build(self, input_shape):
        batch, size, _, _ = input_shape
        shape = input_shape
        for conv, norm in zip(self.convs, self.norms):
            build_initialized(conv, shape, self.initialization)
            size -= 2
            shape = (batch, size, size, self.groups * self.filters)
            norm.build(shape)
        build_initialized(self.output_conv, shape, self.initialization)

    def call(self, maps, training=None):
        x = maps
        for conv, norm in zip(self.convs, self.norms):
            x = ops.relu(norm(conv(x), training=training))
        logit = self.output_conv(x)
        return logit, ops.sigmoid(logit)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "initialization": self.initialization, "groups": self.groups}


@keras.saving.register_keras_serializable(package="jaa_keras")
class AdaptiveAttention(layers.Layer):
    """The adaptive attention learning module: from the region features and the predicted
    landmarks to a dict of the local AU feature map (all AU branches merged) under "local", the
    refined maps ("attention") with their logits ("attention_logit", only with refinement) and
    the initial maps at the refined maps' size ("attention_initial").

    Every AU has its own refinement and feature stack; all AUs' run as one grouped convolution
    per level, one channel group per AU. Traced, that is a twelfth of the graph that separate
    branches make: the first training step of the synthetic preset's network took 6.5 s instead
    of 21.8 s and later steps 0.17 s instead of 0.22 s; at the paper's size a CPU step is 15 %
    slower (BENCHMARKS.md).
    """

    def __init__(self, aus, crop_size: int, width_unit: int, zeta: float, xi: float,
                 refinement: bool = True, enhancement: float | None = 2.0,
                 merge: str = "sum", initialization: str = "caffe",
                 feature_stack: str = "paper", **kwargs):
        super().__init__(**kwargs)
        self.aus = tuple(aus)
        self.crop_size, self.width_unit = crop_size, width_unit
        self.zeta, self.xi = zeta, xi
        self.refinement, self.enhancement, self.merge = refinement, enhancement, merge
        self.initialization, self.feature_stack = initialization, feature_stack
        feature_size = crop_size // 4
        self.initial_maps = InitialAttentionMaps(
            self.aus, crop_size, feature_size + 8, feature_size, zeta, xi, name="initial_maps")
        stack_channels = (12 * width_unit, 16 * width_unit, 20 * width_unit)
        groups = len(self.aus)
        self.refine = (AttentionRefinement(8 * width_unit, initialization, groups, name="refine")
                       if refinement else None)
        self.local = FeatureStack(stack_channels, initialization, groups, feature_stack,
                                  name="local")

    @property
    def branch_layers(self) -> list:
        """The layers of the AU branches: each of their weights holds the AUs side by side on its
        last axis, in the order of `aus`."""
        return [layer for layer in (self.refine, self.local) if layer is not None]

    def _branch_weights(self) -> list:
        return [w for layer in self.branch_layers for w in layer.weights]

    def _au_slice(self, weight, au: int) -> slice:
        """Where `au`'s part of a branch weight lies on its last axis."""
        index, width = self.aus.index(au), weight.shape[-1] // len(self.aus)
        return slice(index * width, (index + 1) * width)

    def au_weights(self, au: int) -> list[np.ndarray]:
        """One AU's slice of every weight of its branch (refinement, if any, and feature stack)."""
        return [np.asarray(w)[..., self._au_slice(w, au)] for w in self._branch_weights()]

    def set_au_weights(self, au: int, values: list[np.ndarray]) -> None:
        """Overwrite one AU's slice of the branch weights with `values` (as `au_weights` gives)."""
        weights = self._branch_weights()
        if len(values) != len(weights):
            raise ValueError(f"{len(values)} weights for AU {au}'s branch, which has {len(weights)}")
        for weight, value in zip(weights, values):
            part = self._au_slice(weight, au)
            expected = (*weight.shape[:-1], part.stop - part.start)
            if value.shape != expected:
                raise ValueError(f"AU {au}: {weight.path} takes {expected} per AU, not {value.shape}")
            updated = np.array(weight)
            updated[..., part] = value
            weight.assign(updated)

    def build(self, features_shape, landmarks_shape=None):
        batch, size, _, channels = features_shape
        map_shape, _ = self.initial_maps.compute_output_shape((batch, 0))
        if self.refine is not None:
            self.refine.build(map_shape)
        self.local.build((batch, size, size, len(self.aus) * channels))

    def call(self, features, landmarks, training=None):
        maps, initial = self.initial_maps(landmarks)
        outputs = {"attention_initial": initial}
        if self.refine is not None:
            outputs["attention_logit"], refined = self.refine(maps, training=training)
        else:
            refined = initial
        outputs["attention"] = refined
        weighting = refined if self.enhancement is None else enhance_gradient(refined, self.enhancement)
        # Every AU branch reads the region features weighted by its own map (in their dtype):
        # channel group i of the local stack's input is the features times AU i's map.
        weighting = ops.cast(weighting, features.dtype)
        _, height, width, channels = features.shape
        groups = len(self.aus)
        weighted = ops.reshape(features[..., None, :] * weighting[..., :, None],
                               (-1, height, width, groups * channels))
        local = self.local(weighted, training=training)
        _, height, width, grouped = local.shape
        local = ops.sum(ops.reshape(local, (-1, height, width, groups, grouped // groups)), axis=3)
        outputs["local"] = local if self.merge == "sum" else local / groups
        return outputs

    def get_config(self):
        return {**super().get_config(), "aus": self.aus, "crop_size": self.crop_size,
                "width_unit": self.width_unit, "zeta": self.zeta, "xi": self.xi,
                "refinement": self.refinement, "enhancement": self.enhancement, "merge": self.merge,
                "initialization": self.initialization, "feature_stack": self.feature_stack}
