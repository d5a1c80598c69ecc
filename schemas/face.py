"""The 49-point landmark scheme and the AU sets of the supported datasets.

Pure constants (no TensorFlow): the pipeline, the network and the input pipeline all read them
from here. Numbers are from docs/landmarks-and-aus.md.
"""

NUM_LANDMARKS = 49
ALIGNED_SIZE = 200  # side of the aligned face every example holds (docs/data.md)

# Index ranges of the 49-point scheme (0-based, inclusive ends written as Python ranges).
LEFT_EYE = tuple(range(19, 25))   # eye on the image's left; inner corner 22
RIGHT_EYE = tuple(range(25, 31))  # eye on the image's right; inner corner 25
LEFT_INNER_EYE_CORNER = 22
RIGHT_INNER_EYE_CORNER = 25
NOSE_TIP = 13
MOUTH_CORNERS = (31, 37)
# Points that facial muscles hardly move: the nose bridge and tip, the four eye corners. Flow
# targets register a face onto its partner by these, so the flow keeps the muscles' motion and
# loses the head's (pipeline/flow.py).
STABLE_POINTS = (10, 11, 13, 19, 22, 25, 28)

# Horizontal-flip permutation, 0-based: after mirroring x, position i takes point FLIP_PERMUTATION[i].
# docs/landmarks-and-aus.md gives it 1-based.
FLIP_PERMUTATION = tuple(p - 1 for p in (
    10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 11, 12, 13, 14, 19, 18, 17, 16, 15, 29, 28, 27, 26, 31, 30,
    23, 22, 21, 20, 25, 24, 38, 37, 36, 35, 34, 33, 32, 43, 42, 41, 40, 39, 46, 45, 44, 49, 48, 47))

# 49 of DISFA's 66 points: DISFA points 18..66 (1-based), i.e. drop the 17 jaw points.
DISFA_66_TO_49 = tuple(range(17, 66))
# 49 of the 68-point iBUG scheme: drop the jaw (0-16) and the inner mouth corners (60, 64).
IBUG_68_TO_49 = tuple(i for i in range(17, 68) if i not in (60, 64))

AU_SETS = {
    "bp4d": (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24),
    "disfa": (1, 2, 4, 6, 9, 12, 25, 26),
}
# The built-in synthetic dataset is written in BP4D's layout, so it carries BP4D's AU set.
AU_SETS["synthetic"] = AU_SETS["bp4d"]
DATASETS = ("synthetic", "bp4d", "disfa")
# Each dataset's subjects fall in three subject-exclusive parts; fold k tests on part k and
# trains on the other two (docs/data.md).
PARTS = (1, 2, 3)


def au_name(au: int) -> str:
    """The field's column name for an AU number: 1 -> 'AU01'."""
    return f"AU{au:02d}"


def au_names(dataset: str) -> list[str]:
    return [au_name(au) for au in AU_SETS[dataset]]
