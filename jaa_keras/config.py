"""One dataclass describes a JAA-Net; presets for BP4D and DISFA, ablations are fields.

Numbers are from docs/network.md unless a comment says otherwise.
"""
import dataclasses
import math
from dataclasses import dataclass

from schemas.face import AU_SETS, NUM_LANDMARKS

REGION_LAYERS = ("hmr", "region")
INITIAL_ATTENTIONS = ("gaussian", "uniform")
LOCAL_MERGES = ("sum", "mean")
FEATURE_STACKS = ("paper", "caffe")
INITIALIZATIONS = ("caffe", "pytorch", "keras")
# RTATL's self-supervised tasks (docs/network.md, "Auxiliary heads"), in the order a config lists them.
AUXILIARY_TASKS = ("inpainting", "flow")


def stack_output_size(size: int, feature_stack: str, levels: int = 3) -> int:
    """The side of a high-level feature stack's output for an input of side `size`."""
    if feature_stack == "caffe":
        # A 3x3 convolution of stride 2 padded by 1, then a 2x2 pooling per level, all rounding up.
        for _ in range(levels + 1):
            size = -(-size // 2)
        return size
    return size >> levels  # a 2x2 pooling per level, rounding down


@dataclass(frozen=True)
class JaaNetConfig:
    aus: tuple[int, ...]
    num_landmarks: int = NUM_LANDMARKS
    crop_size: int = 176
    # c in the paper: the first region layer has 4c channels, the second 8c; the feature stacks
    # 12c, 16c, 20c (96, 128, 160 at c = 8).
    width_unit: int = 8
    hidden_units: int = 512   # d, the width of the alignment and AU heads' hidden layer
    zeta: float = 0.14        # half box size of an AU attention region, relative to the map
    xi: float = 0.56          # decay of the initial attention inside the box
    lambda_align: float = 0.5    # lambda1 of stage 1 (the alignment stage uses 1)
    lambda_refine: float = 1e-7  # lambda2, paper value with E_r summed over map points
    lambda_enhance: float = 2.0  # lambda3, the back-propagation enhancement of Eq. 5
    # Ablations (the paper's Table 4 rows are combinations of these).
    region_layer: str = "hmr"          # "hmr": hierarchical multi-scale; "region": DRML's 8x8 layer
    attention_refinement: bool = True
    gradient_enhancement: bool = True
    initial_attention: str = "gaussian"  # "uniform" = the paper's "w/o GA" (xi = 0)
    local_merge: str = "sum"             # paper and Caffe sum the AU branches; PyTorch averages
    # The high-level feature stacks (alignment, global, local): "paper" as the paper's text and
    # the PyTorch release (stride 1, floor pooling: 44 -> 5 at crop 176); "caffe" as the Caffe
    # release (each stack's first convolution strides 2, ceil pooling: 44 -> 3).
    feature_stack: str = "paper"
    # How fresh weights are drawn (jaa_keras.layers.initialization): "caffe" as the paper's own
    # release, "pytorch" as the PyTorch release, "keras" Keras' defaults. Not part of the network's
    # identity: configs differing only here compare equal (a model seeds or resumes another).
    initialization: str = dataclasses.field(default="caffe", compare=False)
    # RTATL's auxiliary tasks: which heads train beside the supervised ones, their loss weights
    # and the side of a masked inpainting square relative to the crop (default: the paper's AU
    # attention box, 2 * zeta). Not part of the network's identity either: the heads are dropped
    # at test time and the backbone is the same, so a model with heads seeds one without and the
    # reverse.
    auxiliary: tuple[str, ...] = dataclasses.field(default=(), compare=False)
    inpainting_weight: float = dataclasses.field(default=1.0, compare=False)
    flow_weight: float = dataclasses.field(default=1.0, compare=False)
    inpainting_patch: float = dataclasses.field(default=0.28, compare=False)

    def __post_init__(self):
        if self.region_layer not in REGION_LAYERS:
            raise ValueError(f"region_layer must be one of {REGION_LAYERS}, got {self.region_layer!r}")
        if self.initial_attention not in INITIAL_ATTENTIONS:
            raise ValueError(
                f"initial_attention must be one of {INITIAL_ATTENTIONS}, got {self.initial_attention!r}")
        if self.local_merge not in LOCAL_MERGES:
            raise ValueError(f"local_merge must be one of {LOCAL_MERGES}, got {self.local_merge!r}")
        if self.feature_stack not in FEATURE_STACKS:
            raise ValueError(
                f"feature_stack must be one of {FEATURE_STACKS}, got {self.feature_stack!r}")
        if self.initialization not in INITIALIZATIONS:
            raise ValueError(
                f"initialization must be one of {INITIALIZATIONS}, got {self.initialization!r}")
        unknown = [task for task in self.auxiliary if task not in AUXILIARY_TASKS]
        if unknown or len(set(self.auxiliary)) != len(self.auxiliary):
            raise ValueError(f"auxiliary must name distinct tasks of {AUXILIARY_TASKS}, "
                             f"got {tuple(self.auxiliary)}")
        # One spelling per set of tasks (a list from flags or JSON, any order).
        object.__setattr__(self, "auxiliary",
                           tuple(task for task in AUXILIARY_TASKS if task in self.auxiliary))
        for name in ("inpainting_weight", "flow_weight"):
            weight = getattr(self, name)
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {weight}")
        if not 0 < self.inpainting_patch <= 1:
            raise ValueError(f"inpainting_patch must be in (0, 1], got {self.inpainting_patch}")
        if self.crop_size % 16:
            # The second region layer cuts a crop/2 map into 8x8 patches.
            raise ValueError(f"crop_size must be a multiple of 16, got {self.crop_size}")
        if self.width_unit < 1 or not self.aus:
            raise ValueError("width_unit must be >= 1 and aus must name at least one AU")

    @property
    def num_aus(self) -> int:
        return len(self.aus)

    @property
    def feature_size(self) -> int:
        """Side of the region-learning output ("pool2") and of the refined attention maps."""
        return self.crop_size // 4

    @property
    def global_size(self) -> int:
        """Side of the global features (every feature stack's output): 176 -> 5 with the paper's
        stacks, 3 with Caffe's."""
        return stack_output_size(self.feature_size, self.feature_stack)

    @property
    def initial_map_size(self) -> int:
        """Initial maps are drawn 8 larger: four unpadded 3x3 convolutions shrink them back."""
        return self.feature_size + 8

    @property
    def region_channels(self) -> tuple[int, int]:
        return 4 * self.width_unit, 8 * self.width_unit

    @property
    def stack_channels(self) -> tuple[int, int, int]:
        return 12 * self.width_unit, 16 * self.width_unit, 20 * self.width_unit

    def replace(self, **overrides) -> "JaaNetConfig":
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "JaaNetConfig":
        values = dict(values)
        values["aus"] = tuple(values["aus"])
        # Models saved before the field existed were drawn with Keras' defaults.
        values.setdefault("initialization", "keras")
        # Those saved before the auxiliary fields take their defaults: no auxiliary heads.
        return cls(**values)


PRESETS = {
    "bp4d": JaaNetConfig(aus=AU_SETS["bp4d"]),
    "disfa": JaaNetConfig(aus=AU_SETS["disfa"]),
}


def preset(name: str, **overrides) -> JaaNetConfig:
    """The named preset ("bp4d" or "disfa"), with any field overridden."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
    return base.replace(**overrides)
