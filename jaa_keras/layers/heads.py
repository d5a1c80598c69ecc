"""The two heads: landmark regression and AU detection (FACTS section 5)."""
import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="jaa_keras")
class AlignmentHead(layers.Layer):
    """Flattened alignment features -> d -> 2 * landmarks (x0, y0, x1, y1, ...), no activation
    between, as in the authors' release."""

    def __init__(self, num_landmarks: int, hidden_units: int, **kwargs):
        super().__init__(**kwargs)
        self.num_landmarks, self.hidden_units = num_landmarks, hidden_units
        self.flatten = layers.Flatten()
        self.hidden = layers.Dense(hidden_units, name="hidden")
        self.coordinates = layers.Dense(2 * num_landmarks, name="coordinates")

    def build(self, input_shape):
        flat = self.flatten.compute_output_shape(input_shape)
        self.hidden.build(flat)
        self.coordinates.build((flat[0], self.hidden_units))

    def call(self, features):
        return self.coordinates(self.hidden(self.flatten(features)))

    def get_config(self):
        return {**super().get_config(), "num_landmarks": self.num_landmarks,
                "hidden_units": self.hidden_units}


@keras.saving.register_keras_serializable(package="jaa_keras")
class AUHead(layers.Layer):
    """Concatenated [alignment, global, local] features -> d -> a two-way softmax per AU.

    Returns P(present), the second class of each AU's softmax; logits are laid out as the
    release's (2, n_au) view.
    """

    def __init__(self, num_aus: int, hidden_units: int, **kwargs):
        super().__init__(**kwargs)
        self.num_aus, self.hidden_units = num_aus, hidden_units
        self.flatten = layers.Flatten()
        self.hidden = layers.Dense(hidden_units, name="hidden")
        self.logits = layers.Dense(2 * num_aus, name="logits")

    def build(self, input_shape):
        flat = self.flatten.compute_output_shape(input_shape)
        self.hidden.build(flat)
        self.logits.build((flat[0], self.hidden_units))

    def call(self, features):
        logits = ops.reshape(self.logits(self.hidden(self.flatten(features))), (-1, 2, self.num_aus))
        return ops.softmax(logits, axis=1)[:, 1]

    def get_config(self):
        return {**super().get_config(), "num_aus": self.num_aus, "hidden_units": self.hidden_units}
