"""The two heads: landmark regression and AU detection (the paper's Fig. 2).

Both run in float32 whatever the global dtype policy: under mixed_bfloat16, bfloat16 would round
P(present) to exactly 1.0 from a log-odds of 6.24 (ln 511) and quantise 64-176 pixel landmarks to
steps of 0.5-1 pixel. The two Dense layers cost little next to the convolutions.
"""
import keras
from keras import layers, ops

from jaa_keras.layers.initialization import build_initialized


@keras.saving.register_keras_serializable(package="jaa_keras")
class DenseHead(layers.Layer):
    """Flattened features -> d -> `outputs`, no activation between, as in the authors' release.

    The alignment head is one with 2 * landmarks outputs (x0, y0, x1, y1, ...). Always float32
    (module doc); `initialization`: how the weights are drawn (jaa_keras.layers.initialization).
    """

    def __init__(self, outputs: int, hidden_units: int, initialization: str = "caffe", **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.outputs, self.hidden_units = outputs, hidden_units
        self.initialization = initialization
        self.flatten = layers.Flatten(dtype="float32")
        self.hidden = layers.Dense(hidden_units, name="hidden", dtype="float32")
        self.output_layer = layers.Dense(outputs, name="output", dtype="float32")

    def build(self, input_shape):
        flat = self.flatten.compute_output_shape(input_shape)
        build_initialized(self.hidden, flat, self.initialization)
        build_initialized(self.output_layer, (flat[0], self.hidden_units), self.initialization)

    def call(self, features):
        return self.output_layer(self.hidden(self.flatten(features)))

    def get_config(self):
        return {**super().get_config(), "outputs": self.outputs, "hidden_units": self.hidden_units,
                "initialization": self.initialization}


@keras.saving.register_keras_serializable(package="jaa_keras")
class AUHead(DenseHead):
    """Concatenated [alignment, global, local] features -> d -> a two-way softmax per AU.

    Returns (logit, probability), each (B, n_au): the log-odds z_present - z_absent of each AU's
    softmax (the outputs are laid out as the release's (2, n_au) view, class 1 = present) and
    P(present) = sigmoid(logit), which is the softmax's class 1. E_softmax is taken from the
    log-odds (jaa_keras.losses).
    """

    def __init__(self, num_aus: int, hidden_units: int, **kwargs):
        kwargs.pop("outputs", None)  # from_config passes the base class's field back
        super().__init__(2 * num_aus, hidden_units, **kwargs)
        self.num_aus = num_aus

    def call(self, features):
        scores = ops.reshape(super().call(features), (-1, 2, self.num_aus))
        logit = scores[:, 1] - scores[:, 0]
        return logit, ops.sigmoid(logit)

    def get_config(self):
        return {**super().get_config(), "num_aus": self.num_aus}
