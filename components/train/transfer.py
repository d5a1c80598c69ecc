"""--init_from: seed a new model from a trained one (DISFA fine-tuned from BP4D, docs/data.md).

The weight surgery is jaa_keras.transfer (the network owns its layout: region, alignment and
global modules copied whole; each mapped AU's refinement and local feature stack copied; the
AU head fresh). This module picks the AU map and turns mismatches into user errors:
  - same AU set (e.g. continuing BP4D training from another BP4D model): everything is copied;
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


def seed_from(source, target, path="the --init_from model") -> dict:
    """Copy `source`'s weights into `target`; returns what was copied (for the stage's record)."""
    from jaa_keras.transfer import SHARED_MODULES, transfer_weights
    s_aus, t_aus = tuple(source.config.aus), tuple(target.config.aus)
    if source.config.replace(aus=t_aus, lambda_align=target.config.lambda_align) != target.config:
        raise UserError(f"{path} has another width, crop or network switches than the model to "
                        f"train ({source.config} vs {target.config}); --init_from needs a model "
                        "of the same shape")
    if s_aus == t_aus:
        target.set_weights(source.get_weights())
        return {"copied": "all", "aus": {f"AU{a:02d}": f"AU{a:02d}" for a in t_aus}, "fresh": []}
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
            "fresh": [f"AU{a:02d}" for a in t_aus if a not in seeded] + ["au_head"]}
