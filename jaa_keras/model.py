"""JAA-Net: region learning, face alignment, global and adaptive-attention AU features, AU head."""
import contextlib
from collections.abc import Mapping

import keras
from keras import ops

from jaa_keras.config import JaaNetConfig, preset
from jaa_keras.layers import (AdaptiveAttention, AUHead, DenseHead, FeatureStack, FlowHead,
                              InpaintingDecoder, RegionLayer, hierarchical_branches,
                              plain_region_branches)
from jaa_keras.metrics import LandmarkMeanError, MaskedMeanF1

# The paper's modules, by the attribute names of their layers; staged training freezes by module.
MODULES = {
    "region": ("region1", "region2"),
    "alignment": ("alignment_features", "alignment_head"),
    "global": ("global_features",),
    "attention": ("attention",),
    "au_head": ("au_head",),
}
LOSS_PARTS = ("au_softmax", "au_dice", "align", "refine")


@keras.saving.register_keras_serializable(package="jaa_keras")
class JaaNet(keras.Model):
    """Input: (B, crop, crop, 3) RGB in [-1, 1]. Output: a dict with
      `au_probability` (B, n_au)  P(present), class 1 of each AU's 2-way softmax;
      `au_logit` (B, n_au)        its log-odds z_present - z_absent, P = sigmoid(au_logit);
      `landmarks` (B, 2*L)        in crop pixels;
      `attention`, `attention_initial` (B, crop/4, crop/4, n_au)  refined and initial AU maps;
      `attention_logit` (same)    the refined maps' logits (only with attention refinement).
    The losses take the logits, as both authors' releases do, so that a confidently wrong output
    still gets a gradient (jaa_keras.losses); metrics and serving use the probabilities. The
    heads and the refined maps are float32 under mixed precision.

    With RTATL's auxiliary heads (config.auxiliary), training passes a dict instead:
    {"images": (B, crop, crop, 3), "auxiliary_images": (B_u, crop, crop, 3)} gives the outputs
    above for "images" plus, for "auxiliary_images", `inpainted` (B_u, crop, crop, 3) in [-1, 1]
    and/or `flow` (B_u, crop/4, crop/4, 2) in crop pixels, one per task named (float32); B_u >= 1
    (TensorFlow's CPU convolution fails on an empty batch). A tensor input (serving, evaluation)
    gives exactly the outputs above, with or without heads.
    """

    def __init__(self, config: JaaNetConfig | dict, **kwargs):
        super().__init__(**kwargs)
        config = JaaNetConfig.from_dict(config) if isinstance(config, dict) else config
        self.jaa_config = config
        # The layers take the model's dtype policy, also when from_config gives it (a model saved
        # under mixed precision and loaded under float32 stays mixed).
        branches = hierarchical_branches if config.region_layer == "hmr" else plain_region_branches
        first, second = config.region_channels
        init, stack = config.initialization, config.feature_stack
        with global_dtype_policy(self.dtype_policy):
            self.region1 = RegionLayer(first, branches(first), init, name="region1")
            self.region2 = RegionLayer(second, branches(second), init, name="region2")
            self.alignment_features = FeatureStack(config.stack_channels, init, layout=stack,
                                                   name="alignment_features")
            self.alignment_head = DenseHead(2 * config.num_landmarks, config.hidden_units, init,
                                            name="alignment_head")
            self.global_features = FeatureStack(config.stack_channels, init, layout=stack,
                                                name="global_features")
            self.attention = AdaptiveAttention(
                config.aus, config.crop_size, config.width_unit, config.zeta,
                xi=config.xi if config.initial_attention == "gaussian" else 0.0,
                refinement=config.attention_refinement,
                enhancement=config.lambda_enhance if config.gradient_enhancement else None,
                merge=config.local_merge, initialization=init, feature_stack=stack,
                name="attention")
            self.au_head = AUHead(config.num_aus, config.hidden_units, initialization=init,
                                  name="au_head")
            self.inpainting_decoder = self.flow_head = None
            if "inpainting" in config.auxiliary:
                self.inpainting_decoder = InpaintingDecoder(
                    (4 * config.width_unit, 2 * config.width_unit), init, name="inpainting_decoder")
            if "flow" in config.auxiliary:
                self.flow_head = FlowHead(config.feature_size,
                                          (8 * config.width_unit, 4 * config.width_unit), init,
                                          name="flow_head")
        self.objective = None
        # Training progress: the objective's parts and the two headline metrics.
        self.part_trackers = {name: keras.metrics.Mean(name=name)
                              for name in LOSS_PARTS + config.auxiliary}
        self.progress_metrics = [MaskedMeanF1(config.num_aus, name="f1"),
                                 LandmarkMeanError(name="landmark_error")]

    @property
    def config(self) -> JaaNetConfig:
        return self.jaa_config

    def call(self, inputs, training=None):
        images, auxiliary = inputs, None
        if isinstance(inputs, Mapping):
            images, auxiliary = inputs["images"], inputs.get("auxiliary_images")
        if auxiliary is None:
            outputs = self._supervised_outputs(self._region_features(images, training), training)
            self._build_heads()
            return outputs
        tasks = self.jaa_config.auxiliary
        if not tasks:
            raise ValueError("auxiliary_images given to a JAA-Net without auxiliary heads "
                             "(config.auxiliary is empty)")
        # One pass over both batches. In training mode BatchNorm then normalises labelled and
        # auxiliary faces with their joint statistics (and its moving averages follow them); in
        # inference mode every face's features are what they would be alone.
        batch = ops.shape(images)[0]
        both = self._region_features(ops.concatenate([images, auxiliary], axis=0), training)
        features, auxiliary_features = both[:batch], both[batch:]
        global_features = None
        if "flow" in tasks:
            global_both = self.global_features(both, training=training)
            global_features, auxiliary_global = global_both[:batch], global_both[batch:]
        outputs = self._supervised_outputs(features, training, global_features)
        if "inpainting" in tasks:
            outputs["inpainted"] = self.inpainting_decoder(auxiliary_features, training=training)
        if "flow" in tasks:
            outputs["flow"] = self.flow_head(auxiliary_global, training=training)
        return outputs

    def _region_features(self, images, training):
        return self.region2(self.region1(images, training=training), training=training)

    def _supervised_outputs(self, features, training, global_features=None):
        head_inputs, landmarks, attention = self._au_head_inputs(features, training,
                                                                 global_features)
        au_logit, au_probability = self.au_head(head_inputs)
        return {"au_probability": au_probability, "au_logit": au_logit, "landmarks": landmarks,
                **attention}

    def _au_head_inputs(self, features, training, global_features=None):
        """(the AU head's input, landmarks, the attention outputs without "local")."""
        alignment = self.alignment_features(features, training=training)
        landmarks = self.alignment_head(alignment)
        attention = self.attention(features, landmarks, training=training)
        local = attention.pop("local")
        if global_features is None:
            # Here, after the attention: layers draw their weights in the order of their first
            # call, and a network's initial weights for a seed stay what they were.
            global_features = self.global_features(features, training=training)
        return ops.concatenate([alignment, global_features, local], axis=-1), landmarks, attention

    def au_head_inputs(self, images):
        """What the AU head reads for `images`, in inference mode: the alignment, global and
        merged local features, concatenated (B, h, w, 3 * 160). A probe fitted on them tells how
        much AU information the features hold, whatever the head makes of it
        (benchmarks.bench_learning --feature_probe)."""
        return self._au_head_inputs(self._region_features(images, False), False)[0]

    def _build_heads(self):
        """Build the auxiliary heads that a tensor call does not run (build_jaanet's first call, a
        loaded file's build config): their weights must exist to be trained, saved and loaded.
        After the backbone, so that a seed gives the same backbone with or without heads."""
        config = self.jaa_config
        size = config.feature_size
        if self.inpainting_decoder is not None and not self.inpainting_decoder.built:
            self.inpainting_decoder.build((None, size, size, config.region_channels[1]))
        if self.flow_head is not None and not self.flow_head.built:
            side = config.global_size
            self.flow_head.build((None, side, side, config.stack_channels[-1]))

    def module_layers(self, module: str) -> list:
        """The layers of one of the paper's modules: region, alignment, global, attention, au_head."""
        try:
            return [getattr(self, name) for name in MODULES[module]]
        except KeyError:
            raise ValueError(f"unknown module {module!r}; choose from {sorted(MODULES)}") from None

    # Training: the objective needs the whole output dict and the inter-ocular distances, so it is
    # given to compile() as one object rather than as a loss per output.
    def compile(self, optimizer="sgd", objective=None, **kwargs):
        # Keras's "auto" turns XLA on for TensorFlow; its CPU convolutions made a training step
        # about 50x slower than TensorFlow's own kernels here (BENCHMARKS.md).
        kwargs.setdefault("jit_compile", False)
        super().compile(optimizer=optimizer, **kwargs)
        self.objective = objective
        # The optimiser's slots are made now, eagerly: made inside the first traced training step
        # (Keras's default without a distribution strategy), they make TensorFlow trace that step
        # twice. The first step of the synthetic preset's network: 22 s instead of 58 s, with the
        # trainer's fused momentum update (BENCHMARKS.md).
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self.objective is None:
            raise ValueError("compile the model with objective=JaaNetLoss(...) before training")
        parts = self.objective(y, y_pred)
        for name, tracker in self.part_trackers.items():
            if name in parts:  # no auxiliary part for a batch without auxiliary images
                tracker.update_state(parts[name])
        total = parts["loss"]
        if self.losses:
            total = total + ops.sum(ops.stack(self.losses))
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        for metric in self.progress_metrics:
            metric.update_state(y, y_pred)
        return super().compute_metrics(x, y, y_pred, sample_weight)

    @property
    def metrics(self):
        return super().metrics + list(self.part_trackers.values()) + self.progress_metrics

    def get_config(self):
        return {**super().get_config(), "config": self.jaa_config.to_dict()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@contextlib.contextmanager
def global_dtype_policy(policy):
    """Layers made inside take `policy` (Keras sets a policy globally or per layer, no scope)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_jaanet(preset_or_config: str | JaaNetConfig = "bp4d", **overrides) -> JaaNet:
    """A built JAA-Net for a preset name ("bp4d", "disfa") or a config, with fields overridden."""
    if isinstance(preset_or_config, JaaNetConfig):
        config = preset_or_config.replace(**overrides)
    else:
        config = preset(preset_or_config, **overrides)
    model = JaaNet(config, name=f"jaanet_{len(config.aus)}au")
    size = config.crop_size
    model(ops.zeros((1, size, size, 3)), training=False)
    return model
