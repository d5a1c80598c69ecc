"""The two heads: landmark regression and AU detection (FACTS section 5)."""
import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="jaa_keras")
class DenseHead(layers.Layer):
    """Flattened features -> d -> `outputs`, no activation between, as in the authors' release.

    The alignment head is one with 2 * landmarks outputs (x0, y0, x1, y1, ...).
    """

    def __init__(self, outputs: int, hidden_units: int, **kwargs):
        super().__init__(**kwargs)
        self.outputs, self.hidden_units = outputs, hidden_units
        self.flatten = layers.Flatten()
        self.hidden = layers.Dense(hidden_units, name="hidden")
        self.output_layer = layers.Dense(outputs, name="output")

    def build(self, input_shape):
        flat = self.flatten.compute_output_shape(input_shape)
        self.hidden.build(flat)
        self.output_layer.build((flat[0], self.hidden_units))

    def call(self, features):
        return self.output_layer(self.hidden(self.flatten(features)))

    def get_config(self):
        return {**super().get_config(), "outputs": self.outputs, "hidden_units": self.hidden_units}


@keras.saving.register_keras_serializable(package="jaa_keras")
class AUHead(DenseHead):
    """Concatenated [alignment, global, local] features -> d -> a two-way softmax per AU.

    Returns P(present), the second class of each AU's softmax; logits are laid out as the
    release's (2, n_au) view.
    """

    def __init__(self, num_aus: int, hidden_units: int, **kwargs):
        kwargs.pop("outputs", None)  # from_config passes the base class's field back
        super().__init__(2 * num_aus, hidden_units, **kwargs)
        self.num_aus = num_aus

    def call(self, features):
        logits = ops.reshape(super().call(features), (-1, 2, self.num_aus))
        return ops.softmax(logits, axis=1)[:, 1]

    def get_config(self):
        return {**super().get_config(), "num_aus": self.num_aus}
