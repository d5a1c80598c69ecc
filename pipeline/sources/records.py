"""What the raw-format readers hand to the pipeline: a unit of work and one frame of it."""
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SourceUnit:
    """One BP4D subject-task sequence or one DISFA subject video.

    Small and picklable (Beam ships units to workers); `paths` holds plain strings only, keyed by
    role ("labels", "images", "landmarks", "video").
    """
    dataset: str
    subject: str
    task: str
    paths: dict[str, str] = field(hash=False, compare=True)


@dataclass
class RawFrame:
    """One frame at raw resolution, before alignment: coded (a row of the AU codes) or not.

    image           RGB uint8 (H, W, 3), or None when `problem` is set or the image is left to
                    decode (bp4d.read_unit(decode_images=False): image_source is the JPEG)
    landmarks       (49, 2) float32, 0-based pixels (x, y), or None when missing
    au              int64, one per AU of the dataset's set (schemas.face.AU_SETS), in its order:
                    1 present, 0 absent, -1 not coded (every AU of an uncoded frame)
    image_source    file the pixels come from; for a video "<path>#<0-based frame>"
    landmark_source file the landmarks come from; for BP4D "<path>#<pred entry>"
    problem         None when the frame is usable, else a short reason ("image missing",
                    "no landmarks", "image unreadable: ...") for the rejected log
    landmark_pairing  how the sequence's landmark entries were paired with frames (BP4D: "first
                    image", ...; see pipeline.sources.bp4d), None where nothing had to be decided
    coded           False for a frame no AU code file has a row for (a BP4D image beyond its
                    sequence's coded segment, a sequence without codes, an --unlabelled_dir
                    frame): it becomes an unlabelled record for the auxiliary tasks
    """
    dataset: str
    subject: str
    task: str
    frame: int
    image: np.ndarray | None
    landmarks: np.ndarray | None
    au: np.ndarray
    image_source: str
    landmark_source: str
    problem: str | None = None
    landmark_pairing: str | None = None
    coded: bool = True
