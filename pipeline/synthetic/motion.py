"""Smooth sequences: expressions and head pose that change gradually from frame to frame.

Every KEYFRAME_GAP frames an expression keyframe draws a new expression (labels.sample_intensities
and its drawn strengths), and every POSE_GAP frames a pose keyframe puts the head a little off the
sequence's own pose; the frames between ease from one keyframe to the next (smoothstep: no jump in
place or speed at a keyframe). The head drifts slower than the expression changes, so the optical
flow between nearby frames is mostly the AUs' own motion, each inside its region (face.AU_MOVES,
render.py). A frame's intensity label is the level whose drawn strength is nearest its eased
strength (labels.level_of): a keyframe keeps the level it drew, and codes still come from
intensity >= 2. The camera (light, gain, sensor noise) and the gaze stay through a sequence, as a
real camera's fixed noise pattern does: noise drawn afresh in every frame of our flat drawn skin
makes the flow algorithm see motion where nothing moves (0.55 px mean DIS flow outside the AU
regions against 0.13 px with the noise kept, no drift).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from pipeline.synthetic.face import DRAWN_AUS, Identity, Pose, centred_pose, random_pose
from pipeline.synthetic.labels import level_of, sample_intensities, strengths
from pipeline.synthetic.render import Look, random_look

KEYFRAME_GAP = 4          # frames from one expression keyframe to the next
POSE_GAP = 12             # frames from one pose keyframe to the next
# How far a pose keyframe is off the sequence's pose, either way: a small drift, since whatever
# of it an alignment leaves in a pair of faces is flow outside the AU regions. Frames t and t + 2
# warped by t's alignment, mean DIS flow near the changing AUs over the rest of the face (six sets
# of five sequences, tests/pipeline/test_synthetic.py): 2.3-4.6 times with these, 1.5-3.1 times
# with twice these, 4.4-9.0 times without drift.
DRIFT_ANGLE = 0.75        # degrees of head turn
DRIFT_SCALE = 0.0075      # relative change of the face's size
DRIFT_SHIFT = 0.005       # move of the face's centre, of the frame's width / height (1.4 px)
_MIDDLE = (0.0, 0.45)     # the canonical point a pose is centred on (face.centred_pose)


@dataclass(frozen=True)
class FrameState:
    """What one frame of a sequence shows, before it is drawn."""
    intensities: dict[int, int]
    strengths: dict[int, float]
    pose: Pose
    look: Look


def smooth_states(identity: Identity, task_of: Callable[[int], str], frame_size: tuple[int, int],
                  expression_rng: np.random.Generator, pose_rng: np.random.Generator
                  ) -> Iterator[FrameState]:
    """The frames of one sequence, without end. `task_of(k)` is the BP4D task whose emotion the
    k-th expression keyframe leans to. Each generator is drawn from in order, so the first n
    frames are the same however many follow."""
    base = random_pose(identity, pose_rng, frame_size)
    base_centre = base.apply([_MIDDLE])[0]
    look = random_look(pose_rng)
    size = np.asarray(frame_size, np.float64)

    def expression(k: int) -> list[float]:
        drawn = strengths(sample_intensities(expression_rng, task_of(k)), expression_rng)
        return [drawn[au] for au in DRAWN_AUS]

    def pose(_: int) -> list:
        return [base.angle_deg + pose_rng.uniform(-DRIFT_ANGLE, DRIFT_ANGLE),
                base.scale * (1 + pose_rng.uniform(-DRIFT_SCALE, DRIFT_SCALE)),
                base_centre + pose_rng.uniform(-DRIFT_SHIFT, DRIFT_SHIFT, 2) * size]

    expressions, poses = _Keyframes(expression, KEYFRAME_GAP), _Keyframes(pose, POSE_GAP)
    for i in itertools.count():
        drawn = dict(zip(DRAWN_AUS, expressions.at(i)))
        angle, scale, centre = poses.at(i)
        yield FrameState(intensities={au: level_of(s) for au, s in drawn.items()},
                         strengths=drawn, pose=centred_pose(angle, scale, centre), look=look)


class _Keyframes:
    """Values drawn every `gap` frames (keyframe k by `draw(k)`, in order, each once: a list of
    numbers or arrays), eased in between."""

    def __init__(self, draw: Callable[[int], list], gap: int):
        self.draw, self.gap = draw, gap
        self.k, self.before, self.after = 0, draw(0), draw(1)

    def at(self, frame: int) -> list:
        """The values at `frame`; frames come in order."""
        while frame >= (self.k + 1) * self.gap:
            self.k, self.before, self.after = self.k + 1, self.after, self.draw(self.k + 2)
        t = (frame - self.k * self.gap) / self.gap
        w = t * t * (3 - 2 * t)
        return [(1 - w) * a + w * b for a, b in zip(self.before, self.after)]
