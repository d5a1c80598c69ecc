"""Training schedules (docs/data.md) and the optimiser; the presets are in presets.py.

Paper schedule (Sec. 4.1 "Implementation Details", Caffe):
  phase 1 "all":       every module, 8 epochs, lr 0.01 (BP4D) / 0.001 (DISFA), lambda_align 0.5
  phase 2 "alignment": only the face-alignment module, 2 epochs, lr 0.001, lambda_align 1
  phase 3 "au":        only the global and attention modules (and the AU head, which reads them),
                       2 epochs, lr 0.001
  with the authors' Caffe solver: Nesterov momentum, and every convolution and fully connected
  bias learning at 2x the learning rate without weight decay (lr_mult 2, decay_mult 0 in the
  Caffe release).
Joint schedule (the authors' PyTorch release): every module, 12 epochs, Nesterov momentum,
  lr 0.01, keeping the best epoch; one learning rate and weight decay for every parameter
  (torch.optim.SGD over all of them).
Both: SGD, momentum 0.9, weight decay 5e-4, batch 9, lr x 0.3 every 2 epochs (counted from the
start of each phase).

Weight decay. The paper trains with Caffe's SGD solver ("a momentum of 0.9, a weight decay of
0.0005"). Caffe's `weight_decay` with its default L2 regularisation adds `decay * w` to each
parameter's gradient BEFORE the momentum update (v = m v + lr (g + decay w); w -= v), i.e.
L2-in-the-loss (coupled) decay, not decoupled decay (AdamW/SGDW style, which Keras' own
`weight_decay=` argument implements by shrinking the weights outside the momentum). So
`CoupledDecaySGD` below adds `decay * w` to the gradient inside the update, and scales each
bias's step as a Caffe `lr_mult` / `decay_mult` would. Caffe's Nesterov step (history h:
h' = m h + lr g; w -= (1 + m) h' - m h) is Keras' `nesterov=True` step with momentum = -h.
"Biases" are the `bias` vectors of convolutions and dense layers; BatchNormalization's scale
and offset (Caffe's Scale layer) keep the defaults (lr x 1, decayed).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import keras

from components.train.presets import SCHEDULES

MODULES = ("region", "alignment", "global", "attention", "au_head")


@dataclass(frozen=True)
class Phase:
    name: str
    modules: tuple[str, ...]      # trained; every other module is frozen
    epochs: int
    learning_rate: float
    lambda_align: float | None    # None: the model config's lambda_align
    nesterov: bool = False
    keep_best: bool = False       # end the phase with the weights of its best validation epoch
    bias_lr_multiplier: float = 1.0   # Caffe's lr_mult of biases (2 in the authors' release)
    decay_biases: bool = True         # Caffe's decay_mult of biases (0 in the authors' release)


def build_schedule(name: str, dataset: str, *, epochs=None, learning_rates=None) -> list[Phase]:
    """The phases of schedule `name`; `epochs` / `learning_rates`: per-phase overrides (lists)."""
    if name == "paper":
        first_lr = 0.001 if dataset == "disfa" else 0.01
        caffe = {"nesterov": True, "bias_lr_multiplier": 2.0, "decay_biases": False}
        phases = [Phase("all", MODULES, 8, first_lr, 0.5, **caffe),
                  Phase("alignment", ("alignment",), 2, 0.001, 1.0, **caffe),
                  Phase("au", ("global", "attention", "au_head"), 2, 0.001, None, **caffe)]
    elif name == "joint":
        phases = [Phase("joint", MODULES, 12, 0.01, 0.5, nesterov=True, keep_best=True)]
    else:
        raise ValueError(f"unknown schedule {name!r}; choose one of {SCHEDULES}")
    phases = _override(phases, "epochs", epochs, int)
    phases = _override(phases, "learning_rate", learning_rates, float)
    return [p for p in phases if p.epochs > 0]


def _override(phases, field, values, kind):
    if values is None:
        return phases
    values = list(values)
    if len(values) == 1:
        values = values * len(phases)
    if len(values) != len(phases):
        from components.base import ParameterError
        raise ParameterError(f"{field}: give one value or one per phase "
                             f"({', '.join(p.name for p in phases)}), got {values}")
    return [dataclasses.replace(p, **{field: kind(v)}) for p, v in zip(phases, values)]


def learning_rate(phase: Phase, epoch_in_phase: int, decay: float = 0.3, every: int = 2) -> float:
    """Step decay: lr x `decay` every `every` epochs of the phase."""
    return phase.learning_rate * decay ** (epoch_in_phase // every)


def optimizer_for(phase: Phase, momentum: float = 0.9, weight_decay: float = 5e-4):
    """The optimiser of one phase (a fresh one per phase, as Caffe starts each with a new solver)."""
    return CoupledDecaySGD(learning_rate=phase.learning_rate, momentum=momentum,
                           nesterov=phase.nesterov, l2_decay=weight_decay,
                           bias_lr_multiplier=phase.bias_lr_multiplier,
                           decay_biases=phase.decay_biases)


@keras.saving.register_keras_serializable(package="jaa_train")
class CoupledDecaySGD(keras.optimizers.SGD):
    """SGD with momentum, Caffe's (coupled, L2-in-the-gradient) weight decay and Caffe's per-bias
    lr_mult / decay_mult; module doc."""

    def __init__(self, learning_rate=0.01, momentum=0.9, nesterov=False, l2_decay=5e-4,
                 bias_lr_multiplier=1.0, decay_biases=True, **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, **kwargs)
        self.l2_decay = float(l2_decay)
        self.bias_lr_multiplier = float(bias_lr_multiplier)
        self.decay_biases = bool(decay_biases)

    def update_step(self, gradient, variable, learning_rate):
        import tensorflow as tf
        # Keras names a bias "bias"; the TensorFlow backend passes its tf.Variable "<path>/bias:0".
        is_bias = variable.name.split(":")[0].rsplit("/", 1)[-1] == "bias"
        gradient = tf.cast(gradient, variable.dtype)
        if self.l2_decay and (self.decay_biases or not is_bias):
            gradient = gradient + tf.cast(self.l2_decay, variable.dtype) * variable
        if is_bias and self.bias_lr_multiplier != 1.0:
            learning_rate = learning_rate * self.bias_lr_multiplier
        learning_rate = tf.cast(learning_rate, variable.dtype)
        if self.momentum == 0:
            variable.assign_sub(learning_rate * gradient)
            return
        # Keras SGD's own momentum step (m = momentum m - lr g; w += m, or Nesterov's
        # w += momentum m - lr g) as TensorFlow's one fused kernel instead of Keras's ~8 ops per
        # variable: the JAA-Net has 544 weight tensors, and with the ops the optimiser was a third
        # of the graph to trace at the start of every phase (BENCHMARKS.md).
        momentum = self.momentums[self._get_variable_index(variable)]
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle, accum=momentum.value.handle, lr=learning_rate, grad=gradient,
            momentum=tf.cast(self.momentum, variable.dtype), use_nesterov=self.nesterov)

    def get_config(self):
        return {**super().get_config(), "l2_decay": self.l2_decay,
                "bias_lr_multiplier": self.bias_lr_multiplier, "decay_biases": self.decay_biases}
