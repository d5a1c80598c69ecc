"""Every serializable layer of jaa_keras through the shared checks of tests/layer_harness.py."""
import keras
import numpy as np
import pytest

from jaa_keras import preset
from jaa_keras.layers import (AdaptiveAttention, AttentionRefinement, AUHead, DenseHead,
                              FeatureStack, FlowHead, InitialAttentionMaps, InpaintingDecoder,
                              PatchwiseConv, RegionLayer, hierarchical_branches)
from jaa_keras.layers.common import FusedBatchNorm, GroupedConv2D
from jaa_keras.model import JaaNet  # importing the model registers every layer
from schemas.face import NUM_LANDMARKS
from tests.layer_harness import (LayerCase, check_config_round_trip, check_fit_step,
                                 check_mixed_bfloat16, check_serialization, check_symbolic_call)

RNG = np.random.default_rng(0)
AUS = (1, 2, 4)
CROP = 32  # landmarks are in crop pixels


def maps(*shape):
    return RNG.uniform(-1, 1, (2, *shape)).astype(np.float32)


LANDMARKS = RNG.uniform(8, CROP - 8, (2, 2 * NUM_LANDMARKS)).astype(np.float32)
TINY_NET = preset("bp4d", aus=AUS, width_unit=1, crop_size=CROP, hidden_units=8)
B16, F32 = "bfloat16", "float32"
NET_OUTPUTS = {"au_probability": (None, 3), "au_logit": (None, 3),
               "landmarks": (None, 2 * NUM_LANDMARKS), "attention": (None, 8, 8, 3),
               "attention_logit": (None, 8, 8, 3), "attention_initial": (None, 8, 8, 3)}
AUXILIARY_OUTPUTS = {"inpainted": (None, CROP, CROP, 3), "flow": (None, CROP // 4, CROP // 4, 2)}
NET_UNTRAINED = r"(entry|refine/conv[1-3]|conv\d_\d|(inpainting_decoder|flow_head)/conv\d)/bias"

CASES = [
    LayerCase(FusedBatchNorm, {"momentum": 0.9}, (maps(4, 4, 3),), (None, 4, 4, 3), B16),
    LayerCase(GroupedConv2D, {"filters": 4, "kernel_size": 3, "groups": 2, "padding": "same"},
              (maps(6, 6, 4),), (None, 6, 6, 4), B16),
    LayerCase(PatchwiseConv, {"grid": 2, "filters": 4}, (maps(8, 8, 3),), (None, 8, 8, 4), B16),
    LayerCase(RegionLayer, {"channels": 8, "branches": hierarchical_branches(8)},
              (maps(8, 8, 3),), (None, 4, 4, 8), B16, untrained="entry/bias"),
    LayerCase(FeatureStack, {"channels": (4, 6), "groups": 2}, (maps(8, 8, 4),),
              (None, 2, 2, 12), B16, untrained=r"conv\d_\d/bias"),
    LayerCase(FeatureStack, {"channels": (4, 6), "groups": 2, "layout": "caffe"},
              (maps(10, 10, 4),), (None, 2, 2, 12), B16, untrained=r"conv\d_\d/bias"),
    # No weights and no gradient: the maps are drawn from landmarks in float32.
    LayerCase(InitialAttentionMaps, {"aus": AUS, "crop_size": CROP, "map_size": 16,
                                     "target_size": 8, "zeta": 0.14, "xi": 0.56},
              (LANDMARKS,), ((None, 16, 16, 3), (None, 8, 8, 3)), (F32, F32)),
    LayerCase(AttentionRefinement, {"filters": 4, "groups": 3}, (maps(16, 16, 3),),
              ((None, 8, 8, 3), (None, 8, 8, 3)), (F32, F32), untrained="conv[1-3]/bias"),
    LayerCase(AdaptiveAttention, {"aus": AUS, "crop_size": CROP, "width_unit": 1, "zeta": 0.14,
                                  "xi": 0.56}, (maps(8, 8, 4), LANDMARKS),
              {"attention_initial": (None, 8, 8, 3), "attention_logit": (None, 8, 8, 3),
               "attention": (None, 8, 8, 3), "local": (None, 1, 1, 20)},
              {"attention_initial": F32, "attention_logit": F32, "attention": F32, "local": B16},
              untrained=r"(refine/conv[1-3]|conv\d_\d)/bias"),
    LayerCase(DenseHead, {"outputs": 6, "hidden_units": 4}, (maps(2, 2, 3),), (None, 6), F32),
    LayerCase(AUHead, {"num_aus": 3, "hidden_units": 4}, (maps(5),), ((None, 3), (None, 3)),
              (F32, F32)),
    # Convolutions before a normalisation and the float32 output convolution (no BN after it).
    LayerCase(InpaintingDecoder, {"channels": (4, 2)}, (maps(4, 4, 8),), (None, 16, 16, 3), F32,
              untrained=r"conv\d/bias"),
    LayerCase(FlowHead, {"output_size": 8, "channels": (4, 2)}, (maps(2, 2, 6),),
              (None, 8, 8, 2), F32, untrained=r"conv\d/bias"),
    LayerCase(JaaNet, {"config": TINY_NET}, (maps(CROP, CROP, 3),), NET_OUTPUTS,
              {key: F32 for key in NET_OUTPUTS}, untrained=NET_UNTRAINED),
    # With both auxiliary heads, called as in training: labelled and auxiliary images.
    LayerCase(JaaNet, {"config": TINY_NET.replace(auxiliary=("inpainting", "flow"))},
              ({"images": maps(CROP, CROP, 3), "auxiliary_images": maps(CROP, CROP, 3)},),
              {**NET_OUTPUTS, **AUXILIARY_OUTPUTS},
              {key: F32 for key in {**NET_OUTPUTS, **AUXILIARY_OUTPUTS}}, untrained=NET_UNTRAINED,
              variant="auxiliary"),
]
WITH_WEIGHTS = [case for case in CASES if case.layer_class is not InitialAttentionMaps]


def test_every_registered_layer_is_checked():
    registered = {cls for name, cls in keras.saving.get_custom_objects().items()
                  if name.startswith("jaa_keras>") and issubclass(cls, keras.layers.Layer)}
    assert registered == {case.layer_class for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("check", [check_config_round_trip, check_serialization,
                                   check_symbolic_call, check_mixed_bfloat16],
                         ids=lambda check: check.__name__[len("check_"):])
def test_layer(check, case):
    check(case)


@pytest.mark.parametrize("case", WITH_WEIGHTS, ids=str)
def test_one_fit_step_trains_every_weight(case):
    check_fit_step(case)
