"""Drawing a synthetic face with OpenCV: anti-aliased fills and lines in canonical face units.

Every AU changes the picture only inside its own region: its landmarks move (face.AU_MOVES) and
its texture appears (wrinkles, folds, shading) with a contrast proportional to its strength.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.synthetic.face import Identity, Pose, deform

_SHIFT = 4                        # sub-pixel bits for OpenCV's drawing functions
_ONE = 1 << _SHIFT
_SCLERA = (236, 234, 228)
_TEETH = (238, 232, 214)
_MOUTH = (70, 22, 28)
NOISE_MARGIN = 64               # rows of noise beyond a frame's height: the windows to choose from


def _mix(colour, factor: float, towards=(0, 0, 0)) -> tuple:
    """`colour` moved `factor` of the way towards another colour."""
    return tuple(float(c + (t - c) * factor) for c, t in zip(colour, towards))


class _Canvas:
    """Draws canonical-unit shapes onto a frame through a pose."""

    def __init__(self, image: np.ndarray, pose: Pose):
        self.image, self.scale = image, pose.scale
        self._matrix = pose.matrix * _ONE

    def _pixels(self, points) -> np.ndarray:
        points = np.asarray(points, np.float64).reshape(-1, 2)
        return np.round(points @ self._matrix[:, :2].T + self._matrix[:, 2]).astype(np.int32)

    def fill(self, points, colour):
        cv2.fillPoly(self.image, [self._pixels(points)], colour, cv2.LINE_AA, _SHIFT)

    def line(self, points, colour, width: float = 0.02, closed: bool = False):
        thickness = max(1, int(round(width * self.scale)))
        cv2.polylines(self.image, [self._pixels(points)], closed, colour, thickness, cv2.LINE_AA,
                      _SHIFT)

    def ellipse(self, centre, axes, colour, angle: float = 0.0, arc=(0.0, 360.0), width=None):
        """A filled ellipse, or an arc of it drawn as a line when `width` is given."""
        t = np.deg2rad(np.linspace(arc[0], arc[1], 25))
        a = np.deg2rad(angle)
        x, y = axes[0] * np.cos(t), axes[1] * np.sin(t)
        points = np.stack([x * np.cos(a) - y * np.sin(a), x * np.sin(a) + y * np.cos(a)], 1)
        points += centre
        if width is None:
            self.fill(points, colour)
        else:
            self.line(points, colour, width)


def _curve(start, end, bend: float, n: int = 9) -> np.ndarray:
    """A quadratic arc from start to end whose middle is pushed `bend` along the left normal."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    direction = end - start
    normal = np.array([direction[1], -direction[0]]) / (np.hypot(*direction) + 1e-9)
    control = (start + end) / 2 + 2 * bend * normal
    s = np.linspace(0, 1, n)[:, None]
    return (1 - s) ** 2 * start + 2 * s * (1 - s) * control + s ** 2 * end


def _head_outline(jaw: np.ndarray) -> np.ndarray:
    """The jaw from temple to temple, closed over the top of the skull."""
    right, left = jaw[-1], jaw[0]
    theta = np.linspace(0, -np.pi, 20)
    half_width, mid_y = (right[0] - left[0]) / 2, (right[1] + left[1]) / 2
    top = np.stack([half_width * np.cos(theta), mid_y + 1.45 * np.sin(theta)], 1)
    return np.concatenate([jaw, top])


def _draw_wrinkles(c: _Canvas, p: np.ndarray, jaw: np.ndarray, s: dict, skin):
    """AU textures, each inside its own region and as dark as the AU is strong."""
    def dark(au, k=0.45):
        return _mix(skin, k * s.get(au, 0.0))

    def on(au):
        return s.get(au, 0.0) > 0.02

    if on(1):   # inner brow raiser: horizontal lines over the middle of the forehead
        top = p[[4, 5], 1].mean()
        for dy, half in ((0.17, 0.2), (0.28, 0.16)):
            c.line(_curve((-half, top - dy), (half, top - dy), -0.025), dark(1), 0.022)
    if on(2):   # outer brow raiser: lines over the outer brows
        for side in (-1, 1):
            tail = p[1] if side < 0 else p[8]
            for dy in (0.12, 0.19, 0.26):
                c.line(_curve(tail + (-0.15 * side, -dy), tail + (0.16 * side, -dy), 0.02 * side),
                       dark(2, 0.5), 0.025)
    if on(4):   # brow lowerer: vertical furrows between the brows, shadow under the brows
        for side in (-1, 1):
            x = p[4 if side < 0 else 5, 0] + 0.06 * side * -1
            c.line(_curve((x, -0.42), (x - 0.01 * side, -0.14), 0.015 * side), dark(4, 0.5), 0.024)
            brow = p[0:5] if side < 0 else p[5:10]
            c.line(brow[1:4] + [0, 0.08], dark(4, 0.25), 0.05)
    if on(6):   # cheek raiser: crow's feet, a furrow under the eye, a lifted cheek
        for side, corner, lower in ((-1, p[19], p[[23, 24]]), (1, p[28], p[[29, 30]])):
            for angle in (-30, 0, 30):
                a = np.deg2rad(angle)
                d = np.array([side * np.cos(a), np.sin(a)])
                c.line([corner + 0.07 * d, corner + 0.19 * d], dark(6, 0.5), 0.02)
            mid = lower.mean(0)
            c.line(_curve(mid + (-0.2, 0.13), mid + (0.2, 0.13), -0.04 * side * 0 - 0.04),
                   dark(6, 0.4), 0.025)
            lifted = _mix(skin, 0.25 * s[6], (255, 255, 255))
            c.ellipse(mid + (0.02 * side, 0.38), (0.2, 0.11), lifted)
    if on(7):   # lid tightener: a tense bulge along each lower lid
        for lower in (p[[22, 23, 24, 19]], p[[25, 30, 29, 28]]):
            c.line(lower + [0, 0.04], dark(7, 0.5), 0.025)
    if on(9):   # nose wrinkler: creases across the bridge
        for y in (0.14, 0.22, 0.3):
            c.line(_curve((-0.1, p[12, 1] - 0.36 + y), (0.1, p[12, 1] - 0.36 + y), -0.02),
                   dark(9, 0.5), 0.02)
    if on(10):  # upper lip raiser: deep folds from the nose wings
        for side, wing in ((-1, p[14]), (1, p[18])):
            c.line(_curve(wing + (0.02 * side, 0.0), wing + (0.12 * side, 0.22), -0.02 * side),
                   dark(10, 0.5), 0.025)
    for side, corner in ((-1, p[31]), (1, p[37])):
        if on(12):  # lip corner puller: smile brackets beside the corners
            c.line(_curve(corner + (0.03 * side, -0.1), corner + (0.06 * side, 0.07), -0.03 * side),
                   dark(12, 0.5), 0.022)
        if on(14):  # dimpler: a dimple beside each corner
            c.ellipse(corner + (0.07 * side, 0.0), (0.035, 0.05), dark(14, 0.7))
            c.line(_curve(corner + (0.04 * side, -0.07), corner + (0.04 * side, 0.07), 0.02 * side),
                   dark(14, 0.5), 0.02)
        if on(15):  # lip corner depressor: folds running down from the corners
            c.line(_curve(corner + (0.02 * side, 0.03), corner + (0.09 * side, 0.24), 0.02 * side),
                   dark(15, 0.6), 0.03)
        if on(20):  # lip stretcher: short strain lines outside the corners
            c.line([corner + (0.05 * side, 0.03), corner + (0.14 * side, 0.05)], dark(20, 0.5),
                   0.02)
    if on(24):  # lip pressor: the skin bulges just above and below the pressed lips
        for edge, dy in ((p[34], -0.05), (p[40], 0.05)):
            c.line(_curve(edge + (-0.13, dy), edge + (0.13, dy), 0.015 * np.sign(dy)),
                   dark(24, 0.45), 0.025)
    if on(17):  # chin raiser: a furrow under the lower lip and a dimpled chin
        lip_bottom = p[40]
        c.line(_curve(lip_bottom + (-0.15, 0.1), lip_bottom + (0.15, 0.1), -0.03), dark(17, 0.45),
               0.025)
        chin = (jaw[8] + lip_bottom) / 2 + (0, 0.05)
        for dx, dy in ((-0.08, -0.02), (0.0, 0.03), (0.08, -0.02), (-0.04, 0.08), (0.05, 0.08)):
            c.ellipse(chin + (dx, dy), (0.018, 0.018), dark(17, 0.4))


@dataclass(frozen=True)
class Look:
    """What a frame shows besides the face and its pose: where the eyes look and what the camera
    does (uneven light, gain, sensor noise)."""
    gaze: tuple                 # iris offset, canonical units
    light: tuple                # brightness slope across the frame, left-right and top-bottom
    gain: float
    noise_top: int              # the window of the fixed noise image this frame takes
    noise_level: float          # signed: the noise is added or subtracted


def random_look(rng: np.random.Generator) -> Look:
    """A look of its own for one frame."""
    gaze = rng.normal(0, 0.012, 2)
    direction = rng.normal(size=2)
    direction *= rng.uniform(0.0, 0.12) / np.hypot(*direction)
    gain = float(rng.uniform(0.85, 1.12))
    top = int(rng.integers(0, NOISE_MARGIN))
    level = float(rng.uniform(1.5, 4.0) * rng.choice((-1, 1)))
    return Look(gaze=tuple(gaze), light=tuple(float(d) for d in direction), gain=gain,
                noise_top=top, noise_level=level)


def render_face(identity: Identity, strengths: dict[int, float], pose: Pose, size: tuple[int, int],
                rng: np.random.Generator | None = None, look: Look | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An RGB uint8 frame of `size` (width, height) and the 49 landmarks and 17 jaw points drawn
    (pixels, 0-based). `look` None draws one from `rng`."""
    if look is None:
        look = random_look(rng)
    width, height = size
    points, jaw = deform(identity, strengths)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = np.round(identity.background).astype(np.uint8)
    c = _Canvas(image, pose)
    skin = identity.skin

    neck = [(-0.45, 1.2), (0.45, 1.2), (0.55, 2.6), (-0.55, 2.6)]
    c.fill(neck, _mix(skin, 0.18))
    c.ellipse((0, -0.25), (1.12 * (jaw[-1, 0] - jaw[0, 0]) / 2, 1.0), identity.hair)
    for side in (-1, 1):
        c.ellipse((side * jaw[-1, 0] * 0.98, 0.3), (0.1, 0.2), _mix(skin, 0.12))
    c.fill(_head_outline(jaw), skin)

    gaze = np.asarray(look.gaze)
    for eye, upper, lower in ((slice(19, 25), [19, 20, 21, 22], [22, 23, 24, 19]),
                              (slice(25, 31), [25, 26, 27, 28], [28, 29, 30, 25])):
        c.fill(points[eye], _SCLERA)
        centre = points[eye].mean(0) + gaze
        c.ellipse(centre, (0.075, 0.075), identity.iris)
        c.ellipse(centre, (0.03, 0.03), (15, 12, 12))
        for lid, lift in ((upper, -0.14), (lower, 0.12)):
            c.fill(np.concatenate([points[lid], points[lid[::-1]] + [0, lift]]), skin)
        c.line(points[upper], (35, 28, 28), 0.025)
        c.line(points[lower], _mix(skin, 0.35), 0.012)
        c.line(points[upper[1:3]] + [0, -0.05], _mix(skin, 0.2), 0.012)

    _draw_wrinkles(c, points, jaw, strengths, skin)
    theta = np.linspace(-0.08 * np.pi, -0.92 * np.pi, 15)   # hair over the top of the forehead
    half = (jaw[-1, 0] - jaw[0, 0]) / 2
    cap = np.stack([half * 1.01 * np.cos(theta), 0.38 + 1.46 * np.sin(theta)], 1)
    line = _curve(cap[-1], cap[0], -0.1)
    line[:, 1] = np.minimum(line[:, 1], identity.hairline + 0.25 * np.abs(line[:, 0]))
    c.fill(np.concatenate([cap, line]), identity.hair)

    for brow in (points[0:5], points[5:10]):
        c.line(brow, identity.brows, identity.brow_thickness)
    c.line(points[10:14] + [0.07, 0], _mix(skin, 0.12), 0.03)
    c.line(points[14:19], _mix(skin, 0.35), 0.018)
    for a, b in ((14, 15), (18, 17)):
        c.ellipse((points[a] + points[b]) / 2 + (0, 0.0), (0.04, 0.022), _mix(skin, 0.6))

    _draw_mouth(c, points, strengths, identity)
    return _finish(image, look), pose.apply(points), pose.apply(jaw)


def _draw_mouth(c: _Canvas, p: np.ndarray, s: dict, identity: Identity):
    upper_inner, lower_inner = p[[43, 44, 45]], p[[48, 47, 46]]
    opening = np.concatenate([p[[31]], upper_inner, p[[37]], lower_inner[::-1]])
    c.fill(opening, _MOUTH)
    gap = lower_inner[:, 1] - upper_inner[:, 1]
    if gap.max() > 0.02:   # upper teeth show in an open mouth
        teeth_bottom = upper_inner + np.stack([np.zeros(3), np.minimum(gap, 0.07)], 1)
        c.fill(np.concatenate([upper_inner, teeth_bottom[::-1]]), _TEETH)
    lips = _mix(identity.lips, 0.7 * s.get(24, 0.0), identity.skin)   # pressed lips go pale
    c.fill(np.concatenate([p[31:38], p[[45, 44, 43]]]), lips)
    c.fill(np.concatenate([p[[37, 38, 39, 40, 41, 42, 31]], p[[48, 47, 46]]]), lips)
    t23 = s.get(23, 0.0)
    c.line(p[31:43], _mix(identity.lips, 0.2 + 0.6 * t23), 0.012 + 0.035 * t23, closed=True)
    c.line(np.concatenate([p[[31]], upper_inner, p[[37]]]), _mix(_MOUTH, 0.2), 0.015)


def _finish(image: np.ndarray, look: Look) -> np.ndarray:
    """Camera look: a little blur, uneven light, gain and sensor noise."""
    height, width = image.shape[:2]
    work = _workspace(height, width)
    cv2.GaussianBlur(image, (3, 3), 0.7, dst=image)
    cv2.addWeighted(work.xs, look.light[0], work.ys, look.light[1], look.gain, dst=work.light)
    cv2.merge([work.light] * 3, dst=work.light3)
    np.copyto(work.frame, image, casting="unsafe")
    cv2.multiply(work.frame, work.light3, dst=work.frame)
    top = look.noise_top
    cv2.scaleAdd(work.noise[top:top + height], look.noise_level, work.frame, dst=work.frame)
    np.clip(work.frame, 0, 255, out=work.frame)
    return work.frame.astype(np.uint8)


@dataclass
class _Workspace:
    """Buffers reused frame after frame: fresh megabyte-sized arrays per frame cost more in page
    faults than the arithmetic on them."""
    xs: np.ndarray        # (h, w) float32, -1..1 left to right
    ys: np.ndarray        # (h, w) float32, -1..1 top to bottom
    light: np.ndarray     # (h, w) float32
    light3: np.ndarray    # (h, w, 3) float32
    frame: np.ndarray     # (h, w, 3) float32
    noise: np.ndarray     # (h + margin, w, 3) unit Gaussian; frames take shifted windows of it


@functools.lru_cache(maxsize=4)
def _workspace(height: int, width: int) -> _Workspace:
    ys, xs = np.meshgrid(np.linspace(-1, 1, height, dtype=np.float32),
                         np.linspace(-1, 1, width, dtype=np.float32), indexing="ij")
    noise = np.random.default_rng(0).standard_normal((height + NOISE_MARGIN, width, 3), np.float32)
    frame = np.empty((height, width, 3), np.float32)
    return _Workspace(xs=xs, ys=ys, light=np.empty_like(xs), light3=np.empty_like(frame),
                      frame=frame, noise=noise)
