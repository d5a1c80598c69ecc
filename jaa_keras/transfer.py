"""Seeding a model from one trained on another AU set (DISFA from BP4D, docs/data.md)."""
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
        raise ValueError("the source model's width, crop, feature stacks or ablation switches "
                         "differ from the target's; only the AU set may differ")
    for module in SHARED_MODULES:
        for source_layer, target_layer in zip(source.module_layers(module), target.module_layers(module)):
            target_layer.set_weights(source_layer.get_weights())
    seeded = []
    for au in target.config.aus:
        if au not in au_sources:
            continue
        if au_sources[au] not in source.config.aus:
            raise ValueError(f"AU {au} is to be seeded from AU {au_sources[au]}, "
                             f"which the source model does not have ({source.config.aus})")
        target.attention.set_au_weights(au, source.attention.au_weights(au_sources[au]))
        seeded.append(au)
    return seeded
