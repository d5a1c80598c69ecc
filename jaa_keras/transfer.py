"""Seeding a model from one trained on another AU set (DISFA from BP4D, FACTS section 7)."""
import numpy as np

from jaa_keras.model import JaaNet

# DISFA AU -> the BP4D AU whose attention and local branch seed it; AU 9 has none and starts fresh.
DISFA_FROM_BP4D = {1: 1, 2: 2, 4: 4, 6: 6, 12: 12, 25: 23, 26: 17}
SHARED_MODULES = ("region", "alignment", "global")


def transfer_weights(source: JaaNet, target: JaaNet, au_sources: dict[int, int]) -> list[int]:
    """Copy the shared modules whole and each mapped AU's branches; the AU head stays fresh.

    `au_sources` maps a target AU to the source AU it is seeded from. Returns the target AUs that
    were seeded. The two models must have the same width and crop.
    """
    if source.config.replace(aus=target.config.aus) != target.config:
        raise ValueError("the source model's width, crop or ablation switches differ from the target's; "
                         "only the AU set may differ")
    for module in SHARED_MODULES:
        for source_layer, target_layer in zip(source.module_layers(module), target.module_layers(module)):
            target_layer.set_weights(source_layer.get_weights())
    seeded = []
    for target_index, au in enumerate(target.config.aus):
        if au not in au_sources:
            continue
        if au_sources[au] not in source.config.aus:
            raise ValueError(f"AU {au} is to be seeded from AU {au_sources[au]}, "
                             f"which the source model does not have ({source.config.aus})")
        source_index = source.config.aus.index(au_sources[au])
        for source_layer, target_layer in _au_branch_layers(source, target):
            _copy_group(source_layer, source_index, target_layer, target_index)
        seeded.append(au)
    return seeded


def _au_branch_layers(source: JaaNet, target: JaaNet):
    """Pairs of grouped layers (one group per AU) in the attention module."""
    attention = [(source.attention.local_stacks, target.attention.local_stacks)]
    if target.attention.refine is not None:
        attention.append((source.attention.refine, target.attention.refine))
    return attention


def _copy_group(source_layer, source_group: int, target_layer, target_group: int) -> None:
    """Every weight of a grouped layer holds its groups side by side along the last axis."""
    for source_weight, target_weight in zip(source_layer.weights, target_layer.weights):
        width = source_weight.shape[-1] // source_layer.groups
        values = np.array(target_weight.numpy())
        start, seed = target_group * width, source_group * width
        values[..., start:start + width] = source_weight.numpy()[..., seed:seed + width]
        target_weight.assign(values)
