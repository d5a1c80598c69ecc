"""The layers of JAA-Net, each a serializable Keras layer."""
from jaa_keras.layers.attention import (AdaptiveAttention, AttentionRefinement, InitialAttentionMaps,
                                        enhance_gradient)
from jaa_keras.layers.auxiliary import FlowHead, InpaintingDecoder
from jaa_keras.layers.heads import AUHead, DenseHead
from jaa_keras.layers.region import (PatchwiseConv, RegionLayer, hierarchical_branches,
                                     plain_region_branches)
from jaa_keras.layers.stacks import FeatureStack

__all__ = ["AdaptiveAttention", "AttentionRefinement", "InitialAttentionMaps", "enhance_gradient",
           "FlowHead", "InpaintingDecoder", "AUHead", "DenseHead", "PatchwiseConv", "RegionLayer",
           "hierarchical_branches", "plain_region_branches", "FeatureStack"]
