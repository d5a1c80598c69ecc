"""Face geometry of the synthetic dataset: a 49-point template, identities, AU deformations, pose.

Canonical units: the eye centres are at (-0.5, 0) and (0.5, 0) (inter-ocular distance 1), y grows
downward. Each AU moves only the landmarks of its own facial region (the AU centres of
docs/network.md), by an amount proportional to its drawn strength in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas.face import NUM_LANDMARKS

# Every AU the renderer can draw: BP4D's 12 and DISFA's 12 labelled AUs.
DRAWN_AUS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26)

# Neutral face in the 49-point order of docs/landmarks-and-aus.md.
_LEFT_BROW = [(-0.86, -0.27), (-0.70, -0.38), (-0.52, -0.42), (-0.35, -0.40), (-0.19, -0.34)]
_LEFT_EYE = [(-0.72, 0.0), (-0.58, -0.065), (-0.42, -0.065), (-0.28, 0.0),
             (-0.42, 0.055), (-0.58, 0.055)]
_NOSE = [(0, 0.0), (0, 0.18), (0, 0.36), (0, 0.54),
         (-0.20, 0.61), (-0.10, 0.66), (0, 0.68), (0.10, 0.66), (0.20, 0.61)]
_OUTER_LIP = [(-0.40, 1.00), (-0.26, 0.93), (-0.10, 0.89), (0, 0.91), (0.10, 0.89), (0.26, 0.93),
              (0.40, 1.00), (0.26, 1.09), (0.12, 1.13), (0, 1.14), (-0.12, 1.13), (-0.26, 1.09)]
_INNER_LIP = [(-0.15, 0.99), (0, 0.995), (0.15, 0.99), (0.15, 1.0), (0, 1.005), (-0.15, 1.0)]


def _mirror(points):
    return [(-x, y) for x, y in points]


def _right_eye():
    # 25 inner corner, 26-27 upper lid (inner to outer), 28 outer corner, 29-30 lower lid (back)
    outer, up_out, up_in, inner, low_in, low_out = _mirror(_LEFT_EYE)
    return [inner, up_in, up_out, outer, low_out, low_in]


TEMPLATE = np.array(_LEFT_BROW + _mirror(_LEFT_BROW)[::-1] + _NOSE + _LEFT_EYE + _right_eye()
                    + _OUTER_LIP + _INNER_LIP, np.float64)
assert TEMPLATE.shape == (NUM_LANDMARKS, 2)

# 17 jaw points (DISFA's 66-point scheme adds them): from the left temple round the chin.
_JAW_ANGLES = np.linspace(np.pi * 0.97, np.pi * 0.03, 17)
JAW_TEMPLATE = np.stack([1.0 * np.cos(_JAW_ANGLES), 0.25 + 1.33 * np.sin(_JAW_ANGLES)], 1)

BROW_L, BROW_R = slice(0, 5), slice(5, 10)
NOSE_BASE = slice(14, 19)
EYE_L, EYE_R = slice(19, 25), slice(25, 31)
OUTER_LIP, INNER_LIP = slice(31, 43), slice(43, 49)
UPPER_OUTER, LOWER_OUTER = [32, 33, 34, 35, 36], [38, 39, 40, 41, 42]
UPPER_INNER, LOWER_INNER = [43, 44, 45], [46, 47, 48]
MOUTH_CORNERS = (31, 37)


def _symmetric(moves: dict[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
    """Complete a displacement table given for the image's left side with its mirror image."""
    pairs = [(i, 9 - i) for i in range(5)] + [(19, 28), (20, 27), (21, 26), (22, 25), (23, 30),
             (24, 29), (14, 18), (15, 17), (31, 37), (32, 36), (33, 35), (38, 42), (39, 41),
             (43, 45), (46, 48)]
    mirror = {i: i for i in range(NUM_LANDMARKS)}
    mirror.update({a: b for a, b in pairs})
    mirror.update({b: a for a, b in pairs})
    full = dict(moves)
    for i, (dx, dy) in moves.items():
        full.setdefault(mirror[i], (-dx, dy))
    return full


# Landmark displacement at full strength (canonical units), left side given, mirrored.
_AU_MOVES = {
    1: {3: (0, -0.07), 4: (0.01, -0.13), 2: (0, -0.025)},
    2: {0: (-0.01, -0.13), 1: (0, -0.12), 2: (0, -0.07), 3: (0, -0.02)},
    4: {0: (0.01, 0.05), 1: (0.02, 0.07), 2: (0.03, 0.08), 3: (0.04, 0.08), 4: (0.05, 0.07),
        20: (0, 0.01), 21: (0, 0.01)},
    5: {20: (0, -0.035), 21: (0, -0.035)},
    6: {23: (0, -0.02), 24: (0, -0.03), 19: (0, -0.01)},
    7: {23: (0, -0.035), 24: (0, -0.035), 20: (0, 0.015), 21: (0, 0.015)},
    9: {14: (-0.02, -0.04), 15: (0, -0.04), 16: (0, -0.035), 12: (0, -0.01), 32: (0, -0.015),
        33: (0, -0.02), 34: (0, -0.02), 43: (0, -0.02), 44: (0, -0.02)},
    10: {32: (0, -0.05), 33: (0, -0.08), 34: (0, -0.07), 43: (0, -0.08), 44: (0, -0.08),
         31: (0, -0.02)},
    12: {31: (-0.06, -0.10), 32: (-0.03, -0.05), 42: (-0.03, -0.06), 43: (-0.02, -0.03),
         48: (-0.02, -0.03)},
    14: {31: (0.045, -0.01), 32: (0.02, 0), 42: (0.02, 0)},
    15: {31: (0, 0.11), 32: (0, 0.04), 42: (0, 0.05), 43: (0, 0.025), 48: (0, 0.03)},
    17: {38: (0, -0.04), 39: (0, -0.06), 40: (0, -0.06), 46: (0, -0.04), 47: (0, -0.045),
         33: (0, -0.015), 34: (0, -0.015)},
    20: {31: (-0.08, 0.01), 32: (-0.04, 0.0), 42: (-0.04, 0.0), 43: (-0.03, 0), 48: (-0.03, 0)},
    23: {31: (0.025, 0), 32: (0, 0.02), 33: (0, 0.035), 34: (0, 0.035), 38: (0, -0.02),
         39: (0, -0.035), 40: (0, -0.035)},
    24: {32: (0, 0.03), 33: (0, 0.05), 34: (0, 0.05), 38: (0, -0.03), 39: (0, -0.05),
         40: (0, -0.05), 43: (0, 0.005), 44: (0, 0.0), 47: (0, -0.005), 46: (0, -0.005)},
    25: {43: (0, -0.03), 44: (0, -0.035), 46: (0, 0.06), 47: (0, 0.07), 38: (0, 0.045),
         39: (0, 0.05), 40: (0, 0.055)},
    26: {31: (0, 0.06), 38: (0, 0.15), 39: (0, 0.17), 40: (0, 0.18), 46: (0, 0.16),
         47: (0, 0.18)},
}
AU_MOVES = {au: np.zeros((NUM_LANDMARKS, 2)) for au in DRAWN_AUS}
for _au, _moves in _AU_MOVES.items():
    for _i, _d in _symmetric(_moves).items():
        AU_MOVES[_au][_i] = _d
# The jaw drop (AU26) lowers the chin most and the temples not at all.
JAW_DROP = np.stack([np.zeros(17), 0.2 * np.sin(_JAW_ANGLES) ** 3], 1)


@dataclass(frozen=True)
class Identity:
    """One synthetic person: neutral shape and colours (RGB)."""
    name: str
    landmarks: np.ndarray        # (49, 2) neutral, canonical units
    jaw: np.ndarray              # (17, 2)
    skin: tuple
    lips: tuple
    brows: tuple
    hair: tuple
    iris: tuple
    background: tuple
    brow_thickness: float        # canonical units
    hairline: float              # canonical y of the hairline
    face_scale: float            # pixels per canonical unit, before per-frame jitter


def make_identity(name: str, rng: np.random.Generator) -> Identity:
    """A random but plausible person: proportions vary a little, colours a lot."""
    points = TEMPLATE.copy()
    eye_w, eye_h = rng.uniform(0.9, 1.1), rng.uniform(0.85, 1.2)
    for eye in (EYE_L, EYE_R):
        centre = points[eye].mean(0)
        points[eye] = centre + (points[eye] - centre) * [eye_w, eye_h]
    points[0:10, 1] += rng.uniform(-0.05, 0.04)                  # brow height
    points[[0, 9], 1] += rng.uniform(-0.03, 0.04)                 # brow tail
    nose = rng.uniform(0.9, 1.1)
    points[11:19, 1] = points[11:19, 1] * nose
    points[NOSE_BASE, 0] *= rng.uniform(0.85, 1.2)
    mouth_w, mouth_y, lip = rng.uniform(0.88, 1.15), rng.uniform(0.96, 1.06), rng.uniform(0.8, 1.25)
    mouth = points[31:49]
    mouth_centre = np.array([0.0, 1.0])
    mouth[:] = mouth_centre + (mouth - mouth_centre) * [mouth_w, lip]
    mouth[:, 1] += mouth_y - 1.0
    jaw = JAW_TEMPLATE * [rng.uniform(0.95, 1.1), 1.0] + [0, rng.uniform(-0.05, 0.08)]
    jaw[:, 1] += (mouth_y - 1.0) * np.sin(_JAW_ANGLES)

    tone = rng.uniform(0, 1)
    skin = np.array([250, 218, 190]) * (1 - tone) + np.array([120, 82, 60]) * tone
    skin = skin * rng.uniform(0.95, 1.05, 3)
    lips = skin * [0.85, 0.55, 0.58] + [25, 0, 5]
    dark = rng.uniform(20, 90)
    brows = np.array([dark, dark * 0.8, dark * 0.65]) * rng.uniform(0.8, 1.2)
    hair = brows * rng.uniform(0.8, 1.6)
    iris = rng.choice([[60, 40, 25], [90, 110, 140], [70, 90, 60], [40, 30, 25]])
    iris = iris * rng.uniform(0.8, 1.2)
    background = rng.uniform(40, 220, 3)
    clip = lambda c: tuple(float(v) for v in np.clip(c, 0, 255))  # noqa: E731
    return Identity(name=name, landmarks=points, jaw=jaw, skin=clip(skin), lips=clip(lips),
                    brows=clip(brows), hair=clip(hair), iris=clip(iris),
                    background=clip(background),
                    brow_thickness=rng.uniform(0.045, 0.075), hairline=rng.uniform(-1.05, -0.92),
                    face_scale=rng.uniform(60, 70))


def deform(identity: Identity, strengths: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks and jaw of the identity showing AUs at the given strengths (canonical units)."""
    points, jaw = identity.landmarks.copy(), identity.jaw.copy()
    for au, t in strengths.items():
        if t > 0:
            points += t * AU_MOVES[au]
    t26 = strengths.get(26, 0.0)
    jaw += t26 * JAW_DROP
    return points, jaw


@dataclass(frozen=True)
class Pose:
    """In-plane head pose: canonical point p goes to scale * R(angle) p + offset (pixels)."""
    angle_deg: float
    scale: float
    offset: tuple

    @property
    def matrix(self) -> np.ndarray:
        a = np.deg2rad(self.angle_deg)
        m = np.empty((2, 3))
        m[:, :2] = self.scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        m[:, 2] = self.offset
        return m

    def apply(self, points: np.ndarray) -> np.ndarray:
        m = self.matrix
        return np.asarray(points, np.float64) @ m[:, :2].T + m[:, 2]


def random_pose(identity: Identity, rng: np.random.Generator, frame_size: tuple[int, int],
                max_angle: float = 15.0, max_shift: float = 0.08) -> Pose:
    """Rotation up to `max_angle` degrees, scale +-10 %, the face centre shifted up to
    `max_shift` of the frame from the frame's centre."""
    width, height = frame_size
    centre = np.array([width, height]) / 2 + rng.uniform(-max_shift, max_shift, 2) * [width, height]
    angle = rng.uniform(-max_angle, max_angle)
    scale = identity.face_scale * rng.uniform(0.9, 1.1)
    return centred_pose(angle, scale, centre)


def centred_pose(angle_deg: float, scale: float, centre) -> Pose:
    """The pose that puts the middle of the face (canonical point (0, 0.45)) at pixel `centre`."""
    a = np.deg2rad(angle_deg)
    middle = scale * np.array([-np.sin(a), np.cos(a)]) * 0.45
    return Pose(angle_deg=angle_deg, scale=scale, offset=tuple(np.asarray(centre) - middle))
