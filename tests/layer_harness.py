"""The checks every serializable layer of jaa_keras must pass (in the spirit of keras-hub's
TestCase.run_layer_test): config round trip, serialization, a symbolic call, one training step,
and the dtypes it promises under mixed_bfloat16. Each check takes a `LayerCase`."""
import dataclasses
import re

import keras
import numpy as np

from jaa_keras.model import global_dtype_policy

MOVED = 1e-5  # a step's change of a trained weight here is over 1e-4, rounding noise under 2e-6


@dataclasses.dataclass(frozen=True)
class LayerCase:
    """One layer to check: how to make it, the inputs it is called on (its positional arguments:
    tiny arrays, the batch first, or dicts of them; all of one batch size), the shapes of its
    outputs (any nesting, the batch as None) and, for mixed_bfloat16, the dtypes of its outputs
    (the same nesting). `untrained`: a pattern of the weight paths that get no gradient by
    design, the biases of convolutions whose output is batch-normalised (the normalisation
    subtracts them again; the release has them, so the network keeps them). `variant`: names the
    case in test ids when a class has more than one."""
    layer_class: type
    kwargs: dict
    inputs: tuple
    output_shapes: object
    mixed_dtypes: object
    untrained: str = "$^"
    variant: str = ""

    def make(self):
        keras.utils.set_random_seed(0)
        return self.layer_class(**self.kwargs)

    def __str__(self):
        return "-".join(filter(None, (self.layer_class.__name__, self.variant)))


def _numpy(outputs):
    return keras.tree.map_structure(lambda x: keras.ops.convert_to_numpy(x), outputs)


def check_config_round_trip(case: LayerCase):
    config = case.make().get_config()
    assert case.layer_class.from_config(config).get_config() == config


def check_serialization(case: LayerCase):
    """serialize_keras_object / deserialize_keras_object give a layer of the same config that,
    given the same weights, computes the same outputs."""
    layer = case.make()
    expected = _numpy(layer(*case.inputs))
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is case.layer_class
    assert restored.get_config() == layer.get_config()
    assert restored.built  # from the build config, as a .keras file's layers are
    restored.set_weights(layer.get_weights())
    keras.tree.map_structure(np.testing.assert_array_equal, _numpy(restored(*case.inputs)),
                             expected)


def _symbolic(inputs):
    return keras.tree.map_structure(lambda x: keras.Input(shape=x.shape[1:], dtype=x.dtype), inputs)


def check_symbolic_call(case: LayerCase):
    outputs = case.make()(*_symbolic(case.inputs))
    shapes = keras.tree.map_structure(lambda x: tuple(x.shape), outputs)
    assert shapes == case.output_shapes


def check_fit_step(case: LayerCase):
    """A model around the layer trains one step on a squared-error loss: every trainable weight
    of the layer takes part (none is cut off from the gradient) but those `untrained` names, which
    move by rounding noise only. Eagerly: tracing the step would cost more than the step, and
    the graph-mode training step is tested on the whole network."""
    layer = case.make()
    symbolic = _symbolic(case.inputs)
    outputs = keras.tree.flatten(layer(*symbolic))
    model = keras.Model(list(symbolic), outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=["mse"] * len(outputs),
                  run_eagerly=True)
    batch = len(keras.tree.flatten(case.inputs)[0])
    targets = [np.ones((batch, *output.shape[1:]), np.float32) for output in outputs]
    before = [w.numpy().copy() for w in layer.trainable_weights]
    assert before, f"{case}: no trainable weights to train"
    model.train_on_batch(list(case.inputs), targets)
    moved = {w.path: bool(np.abs(w.numpy() - old).max() > MOVED)
             for w, old in zip(layer.trainable_weights, before)}
    expected = {path: not re.search(case.untrained, path) for path in moved}
    assert moved == expected, {path: f"moved {moved[path]}, expected {expected[path]}"
                               for path in moved if moved[path] != expected[path]}


def check_mixed_bfloat16(case: LayerCase):
    """Built under mixed_bfloat16, the layer keeps float32 weights and its outputs have the
    dtypes it promises (heads and attention maps stay float32, the rest computes in bfloat16)."""
    with global_dtype_policy("mixed_bfloat16"):
        layer = case.make()
    outputs = layer(*case.inputs)
    dtypes = keras.tree.map_structure(lambda x: keras.backend.standardize_dtype(x.dtype), outputs)
    assert dtypes == case.mixed_dtypes
    assert all(w.dtype == "float32" for w in layer.weights)
