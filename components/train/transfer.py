"""--init_from: seed a new model from a trained one (DISFA fine-tuned from BP4D, docs/data.md).

The weight surgery is jaa_keras.transfer (the network owns its layout: region, alignment and
global modules copied whole; each mapped AU's refinement and local feature stack copied; the
AU head fresh). This module picks the AU map and turns mismatches into user errors:
  - same AU set (e.g. continuing BP4D training from another BP4D model): everything is copied,
    but for RTATL's auxiliary heads (copy_backbone): a model with heads seeds one without, and
    the reverse, where the heads start fresh;
  - otherwise each target AU is seeded from the same AU where the source has it, else from
    jaa_keras.transfer.DISFA_FROM_BP4D (BP4D AU 23 -> DISFA 25, 17 -> 26); DISFA AU 9 and the
    AU head start fresh.
"""
from __future__ import annotations

from components.base import UserError


def branch_map(source_aus, target_aus) -> dict[int, int]:
    """Target AU -> source AU (docs/data.md)."""
    from jaa_keras.transfer import DISFA_FROM_BP4D
    mapping = {}
    for au in target_aus:
        if au in source_aus:
            mapping[au] = au
        elif au in DISFA_FROM_BP4D and DISFA_FROM_BP4D[au] in source_aus:
            mapping[au] = DISFA_FROM_BP4D[au]
    return mapping


def auxiliary_heads(model) -> list:
    """The auxiliary heads' layers of a JaaNet (RTATL's, training only)."""
    return [layer for layer in (model.inpainting_decoder, model.flow_head) if layer is not None]


def copy_backbone(source, target) -> list[str]:
    """Copy `source`'s weights into `target`, module by module (jaa_keras.model.MODULES: the
    whole network but RTATL's auxiliary heads), and each auxiliary head both have; returns the
    names of the target's heads that `source` lacks, left as they were. ValueError when a layer's
    weights differ in shape (networks of another shape or AU set)."""
    from jaa_keras.model import MODULES
    pairs = [(s, t) for module in MODULES
             for s, t in zip(source.module_layers(module), target.module_layers(module))]
    source_heads = {layer.name: layer for layer in auxiliary_heads(source)}
    fresh = []
    for head in auxiliary_heads(target):
        if head.name in source_heads:
            pairs.append((source_heads[head.name], head))
        else:
            fresh.append(head.name)
    # Weights outside the modules and heads would be left behind silently.
    covered = sum(len(t.weights) for _, t in pairs) + sum(
        len(h.weights) for h in auxiliary_heads(target) if h.name in fresh)
    if covered != len(target.weights):
        raise ValueError(f"{len(target.weights) - covered} weights of {target.name} are in no "
                         "module and no auxiliary head")
    for s, t in pairs:
        t.set_weights(s.get_weights())
    return fresh


def seed_from(source, target, path="the --init_from model") -> dict:
    """Copy `source`'s weights into `target`; returns what was copied (for the stage's record)."""
    from jaa_keras.transfer import SHARED_MODULES, transfer_weights
    s_aus, t_aus = tuple(source.config.aus), tuple(target.config.aus)
    if source.config.replace(aus=t_aus, lambda_align=target.config.lambda_align) != target.config:
        raise UserError(f"{path} has another width, crop or network switches than the model to "
                        f"train ({source.config} vs {target.config}); --init_from needs a model "
                        "of the same shape")
    if s_aus == t_aus:
        try:
            fresh = copy_backbone(source, target)
        except ValueError as e:
            raise UserError(f"{path}: {e}") from None
        return {"copied": "all", "aus": {f"AU{a:02d}": f"AU{a:02d}" for a in t_aus},
                "fresh": fresh}
    mapping = branch_map(s_aus, t_aus)
    if not mapping:
        raise UserError(f"{path} was trained on AUs {list(s_aus)}, which share no branch with "
                        f"{list(t_aus)}; give a BP4D model to seed a DISFA one")
    try:
        seeded = transfer_weights(source, target, mapping)
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None
    return {"copied": list(SHARED_MODULES) + ["attention branches"],
            "aus": {f"AU{t:02d}": f"AU{mapping[t]:02d}" for t in seeded},
            "fresh": [f"AU{a:02d}" for a in t_aus if a not in seeded] + ["au_head"]
            + [layer.name for layer in auxiliary_heads(target)]}
