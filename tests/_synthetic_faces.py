"""Faces of the built-in synthetic set, rendered, aligned and centre-cropped in memory the way
the preprocessing job and the evaluation input pipeline treat them (no files written): inputs
and labels for tests that need real-looking faces rather than noise.
"""
import numpy as np

from components.train.input_pipeline import transform_example
from pipeline.align import align_face
from pipeline.synthetic.dataset import BP4D_TASKS, FRAME_SIZE
from pipeline.synthetic.face import make_identity, random_pose
from pipeline.synthetic.labels import sample_intensities, strengths
from pipeline.synthetic.render import render_face
from schemas.face import AU_SETS

PRESENT_INTENSITY = 2  # BP4D codes an AU present from intensity 2 up, as the synthetic writer does


def synthetic_faces(count: int, crop_size: int = 176, subjects: int = 6, seed: int = 0):
    """`count` faces of `subjects` people cycling through the BP4D tasks.

    Returns images (count, crop, crop, 3) float32 in [-1, 1] and the training targets:
    {"au": (count, 12) int64 BP4D labels, "landmarks": (count, 98) crop pixels,
     "inter_ocular": (count,)}.
    """
    rng = np.random.default_rng(seed)
    identities = [make_identity(f"S{s}", np.random.default_rng([seed, s])) for s in range(subjects)]
    images, targets = [], {"au": [], "landmarks": [], "inter_ocular": []}
    for i in range(count):
        identity = identities[i % subjects]
        intensities = sample_intensities(rng, BP4D_TASKS[i % len(BP4D_TASKS)])
        pose = random_pose(identity, rng, FRAME_SIZE)
        frame, points, _ = render_face(identity, strengths(intensities, rng), pose, FRAME_SIZE, rng)
        face = align_face(frame, points)
        labels = [int(intensities[au] >= PRESENT_INTENSITY) for au in AU_SETS["bp4d"]]
        image, cropped = transform_example(
            {"image": face.image, "landmarks": face.landmarks.reshape(-1),
             "inter_ocular": np.float32(face.inter_ocular), "au": np.array(labels)},
            crop_size, training=False)
        images.append(image.numpy())
        targets["au"].append(labels)
        targets["landmarks"].append(cropped["landmarks"].numpy())
        targets["inter_ocular"].append(float(cropped["inter_ocular"]))
    return (np.stack(images).astype(np.float32),
            {"au": np.array(targets["au"], np.int64),
             "landmarks": np.stack(targets["landmarks"]).astype(np.float32),
             "inter_ocular": np.array(targets["inter_ocular"], np.float32)})
