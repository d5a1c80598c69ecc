"""AU labels of the synthetic dataset: sparse and correlated the way spontaneous expressions are.

A frame shows one expression drawn from a small repertoire (smiles bring AU6 with AU12, surprise
AU1 with AU2 ...), the BP4D task of the sequence making its own emotion likelier (T1 happiness ...
T8 disgust), plus a few AUs switched on or off at random. Each AU gets a DISFA-style intensity
0-5: 0-1 is absent (1 is a trace the renderer draws faintly), 2-5 present (docs/landmarks-and-aus.md).
"""
from __future__ import annotations

import numpy as np

from pipeline.synthetic.face import DRAWN_AUS

# expression: (AUs always on, {AU: probability of joining})
EXPRESSIONS = {
    "neutral": ((), {}),
    "smile": ((6, 12), {7: 0.4, 10: 0.35, 25: 0.35, 14: 0.2}),
    "laugh": ((6, 7, 10, 12, 25), {26: 0.6}),
    "surprise": ((1, 2, 5), {25: 0.6, 26: 0.5}),
    "sadness": ((1, 4, 15), {17: 0.6, 7: 0.2}),
    "anger": ((4, 7), {23: 0.6, 24: 0.5, 17: 0.4, 5: 0.3}),
    "disgust": ((9, 10), {4: 0.5, 17: 0.4, 7: 0.3, 25: 0.3}),
    "pain": ((4, 6, 7, 10), {9: 0.4, 25: 0.3, 20: 0.3}),
    "embarrassment": ((12, 14), {6: 0.3, 24: 0.3, 17: 0.3}),
    "fear": ((1, 2, 4, 20), {5: 0.5, 25: 0.5}),
    "tension": ((17, 24), {23: 0.5, 14: 0.4, 4: 0.3}),
}
# The emotion each BP4D task elicits.
TASK_EXPRESSIONS = {"T1": ("smile", "laugh"), "T2": ("sadness",), "T3": ("surprise",),
                    "T4": ("embarrassment",), "T5": ("fear",), "T6": ("pain",),
                    "T7": ("anger", "tension"), "T8": ("disgust",)}
_BASE_WEIGHT = {name: 1.0 for name in EXPRESSIONS} | {"neutral": 2.0, "smile": 1.5}
_TASK_BOOST = 4.0
_SPURIOUS_ON, _SPURIOUS_OFF = 0.03, 0.05

# Drawn strength of each intensity level: a trace at 1, clearly visible from 2 (positive) up.
STRENGTH = np.array([0.0, 0.12, 0.55, 0.7, 0.85, 1.0])


def sample_intensities(rng: np.random.Generator, task: str | None = None) -> dict[int, int]:
    """One frame's intensity (0-5) for every drawn AU."""
    names = list(EXPRESSIONS)
    boosted = TASK_EXPRESSIONS.get(task, ())
    weights = np.array([_BASE_WEIGHT[n] * (_TASK_BOOST if n in boosted else 1.0) for n in names])
    always, maybe = EXPRESSIONS[names[rng.choice(len(names), p=weights / weights.sum())]]
    on = set(always) | {au for au, p in maybe.items() if rng.random() < p}
    on ^= {au for au in DRAWN_AUS if rng.random() < (_SPURIOUS_OFF if au in on else _SPURIOUS_ON)}
    return {au: int(rng.integers(2, 6)) if au in on else int(rng.random() < 0.25)
            for au in DRAWN_AUS}


def strengths(intensities: dict[int, int], rng: np.random.Generator) -> dict[int, float]:
    """What the renderer draws: the level's strength with a little jitter (none at 0)."""
    return {au: float(np.clip(STRENGTH[level] + (rng.uniform(-0.05, 0.05) if level else 0), 0, 1))
            for au, level in intensities.items()}


def level_of(strength: float) -> int:
    """The intensity level (0-5) whose drawn strength is nearest: a frame between two expressions
    is labelled by what it shows. A drawn level comes back as itself (its jitter is under half
    the gap between levels), and present (>= 2) begins half-way from a trace to level 2."""
    return int(np.argmin(np.abs(STRENGTH - strength)))
