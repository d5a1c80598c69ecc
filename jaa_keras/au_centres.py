"""Where each AU is on the face: the EAC-Net rule that JAA-Net uses (docs/network.md).

Each AU has two centres, left and right. A centre is a landmark of the 49-point scheme moved
vertically by a multiple of the ruler, the horizontal distance of the inner eye corners.
"""
import numpy as np
from keras import ops

from schemas.face import LEFT_INNER_EYE_CORNER, RIGHT_INNER_EYE_CORNER

# AU -> ((landmark, vertical offset in rulers) for centre 1, same for centre 2); y grows downward.
AU_CENTRE_RULES = {
    1: ((4, -1 / 2), (5, -1 / 2)),
    2: ((1, -1 / 3), (8, -1 / 3)),
    4: ((2, 1 / 3), (7, 1 / 3)),
    6: ((24, 1.0), (29, 1.0)),
    7: ((21, 0.0), (26, 0.0)),
    9: ((15, -1 / 2), (17, -1 / 2)),
    10: ((43, 0.0), (45, 0.0)),
    **dict.fromkeys((12, 14, 15), ((31, 0.0), (37, 0.0))),
    **dict.fromkeys((17, 26), ((39, 1 / 2), (41, 1 / 2))),
    **dict.fromkeys((23, 24, 25), ((34, 0.0), (40, 0.0))),
}


def centre_rules(aus) -> tuple[np.ndarray, np.ndarray]:
    """Landmark indices and ruler offsets, each (n_au, 2), for the AUs in order."""
    unknown = [au for au in aus if au not in AU_CENTRE_RULES]
    if unknown:
        raise ValueError(f"no attention centre rule for AU {unknown}; "
                         f"known AUs: {sorted(AU_CENTRE_RULES)}")
    rules = np.array([AU_CENTRE_RULES[au] for au in aus], dtype=np.float64)  # (n_au, 2, 2)
    return rules[..., 0].astype(np.int32), rules[..., 1].astype(np.float32)


def au_centres(landmarks, aus):
    """(B, 2*L) interleaved landmarks -> (B, n_au, 2 centres, 2 coordinates x, y)."""
    points = ops.reshape(landmarks, (-1, landmarks.shape[-1] // 2, 2))
    indices, offsets = centre_rules(aus)
    ruler = ops.abs(points[:, LEFT_INNER_EYE_CORNER, 0] - points[:, RIGHT_INNER_EYE_CORNER, 0])
    anchors = ops.take(points, indices.reshape(-1), axis=1)  # (B, 2*n_au, 2)
    anchors = ops.reshape(anchors, (-1, *indices.shape, 2))
    shift_y = ruler[:, None, None] * offsets[None]
    return ops.stack([anchors[..., 0], anchors[..., 1] + shift_y], axis=-1)
