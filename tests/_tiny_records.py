"""Hand-made aligned examples written through the schema, for the input pipeline and train tests.

Not the synthetic dataset (that is pipeline/synthetic*): these are the smallest records that
exercise the readers, with a dot drawn at known places.
"""
import os
import shutil

import numpy as np
import tensorflow as tf

from schemas.example import ALIGNED_SIZE, NO_FLOW, encode_example
from schemas.face import AU_SETS, NUM_LANDMARKS


def mean_face(rng=None, jitter=0.0) -> np.ndarray:
    """A plausible (49, 2) landmark layout in the aligned 200 x 200 frame."""
    rng = rng or np.random.default_rng(0)
    pts = np.zeros((NUM_LANDMARKS, 2), np.float32)
    pts[0:5] = np.stack([np.linspace(45, 85, 5), np.full(5, 62)], 1)      # brow, image left
    pts[5:10] = np.stack([np.linspace(115, 155, 5), np.full(5, 62)], 1)   # brow, image right
    pts[10:14] = np.stack([np.full(4, 100), np.linspace(80, 110, 4)], 1)  # nose bridge
    pts[14:19] = np.stack([np.linspace(88, 112, 5), np.full(5, 120)], 1)  # nose base
    pts[19:25] = np.stack([np.linspace(55, 85, 6), 80 + np.array([0, -3, -3, 0, 3, 3])], 1)
    pts[25:31] = np.stack([np.linspace(115, 145, 6), 80 + np.array([0, -3, -3, 0, 3, 3])], 1)
    pts[31:43] = np.stack([np.linspace(75, 125, 12), 145 + 6 * np.sin(np.linspace(0, 2 * np.pi, 12))], 1)
    pts[43:46] = np.stack([np.linspace(90, 110, 3), np.full(3, 143)], 1)
    pts[46:49] = np.stack([np.linspace(110, 90, 3), np.full(3, 148)], 1)
    return pts + rng.normal(0, jitter, pts.shape).astype(np.float32)


def inter_ocular(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[19:25].mean(0) - points[25:31].mean(0)))


def draw_example(points, au, dot_index=None, subject="S1", task="T1", frame=0, base=96,
                 flow=None, flow_to=NO_FLOW):
    """Encode one example; a bright 3x3 dot is drawn at landmark `dot_index` (rounded);
    `flow` (schemas.example.FLOW_SHAPE) to frame `flow_to`: its flow target."""
    image = np.full((ALIGNED_SIZE, ALIGNED_SIZE, 3), base, np.uint8)
    if dot_index is not None:
        x, y = np.round(points[dot_index]).astype(int)
        image[y - 1:y + 2, x - 1:x + 2] = 255
    jpeg = tf.io.encode_jpeg(image, quality=100).numpy()
    return encode_example(image_jpeg=jpeg, landmarks=points, au=np.asarray(au, np.int64),
                          inter_ocular=inter_ocular(points), subject=subject, task=task,
                          frame=frame, flow=flow, flow_to=flow_to)


def write_records(path, serialized_examples):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(os.fspath(path), options="GZIP") as writer:
        for s in serialized_examples:
            writer.write(s)


def write_tiny_dataset(root, per_part=12, seed=0, aus=AU_SETS["bp4d"], flow=False,
                       unlabelled=0, outside=0):
    """part{1,2,3}/data.tfrecord.gz with examples whose AU k is visible as a dot, + stats.json.

    AU label i is 1 when landmark 3*i (a spot on the face) carries a bright dot; a learnable toy.
    For the auxiliary tasks (the preprocessing's layout, docs/data.md): `flow` gives every
    coded frame but each subject's last a flow target (tiny_flow) to the frame after it;
    `unlabelled` frames per part go to unlabelled/part<p>/ (the part's subjects, every AU
    unknown, with flow targets when `flow`) and `outside` frames of subject SX to
    unlabelled/outside/.
    """
    import json
    rng = np.random.default_rng(seed)
    rates = {}
    for part in (1, 2, 3):
        examples, labels = [], []
        for n in range(per_part):
            points = mean_face(rng, jitter=1.5)
            au = (rng.random(len(aus)) < 0.4).astype(np.int64)
            au[rng.random(len(aus)) < 0.05] = -1
            au[0] = n % 2  # every AU occurs in every split
            au[1:] = np.where(au[1:] == -1, -1, np.maximum(au[1:], (n % 3 == 0)))
            target = tiny_flow(part, n) if flow and n < per_part - 2 else None
            examples.append(draw_example(points, au, dot_index=22,
                                         subject=f"S{part}{n % 2}", frame=n, flow=target,
                                         flow_to=NO_FLOW if target is None else n + 2))
            labels.append(au)
        write_records(os.path.join(root, f"part{part}", "data-00000-of-00001.tfrecord.gz"), examples)
        labels = np.array(labels)
        rates[part] = labels
        if unlabelled:
            write_records(os.path.join(root, "unlabelled", f"part{part}",
                                       "frames-00000-of-00001.tfrecord.gz"),
                          [_unlabelled(f"S{part}{n % 2}", 1000 + n, len(aus),
                                       tiny_flow(part, 1000 + n) if flow else None)
                           for n in range(unlabelled)])
    if outside:
        write_records(os.path.join(root, "unlabelled", "outside", "frames-00000-of-00001.tfrecord.gz"),
                      [_unlabelled("SX", n, len(aus), tiny_flow(0, n) if flow else None)
                       for n in range(outside)])
    names = [f"AU{a:02d}" for a in aus]
    splits = {}
    for fold in (1, 2, 3):
        train = np.concatenate([rates[p] for p in (1, 2, 3) if p != fold])
        positive, labelled = (train == 1).sum(0), (train >= 0).sum(0)
        r = np.maximum(positive, 0.5) / np.maximum(labelled, 1)
        w = (1 / r) * len(r) / (1 / r).sum()
        splits[f"fold{fold}"] = {"test_part": fold, "occurrence_rate": r.tolist(),
                                 "weights": w.tolist()}
    stats = {"dataset": "synthetic", "aus": names, "splits": splits,
             "parts": {str(p): {"examples": per_part} for p in (1, 2, 3)}}
    with open(os.path.join(root, "stats.json"), "w") as f:
        json.dump(stats, f)
    write_manifest(root, {"subjects": {str(p): [f"S{p}0", f"S{p}1"] for p in (1, 2, 3)}})
    from components.base import write_completion_record
    write_completion_record(root, stage="preprocess", parameters={"dataset": "synthetic",
                                                                  "seed": seed},
                            identity={"dataset": "synthetic"}, summary={"examples": 3 * per_part})
    return root


def tiny_flow(part, frame) -> np.ndarray:
    """A constant flow target that names its record: (dx, dy) = (part, frame) aligned pixels."""
    from schemas.example import FLOW_SHAPE
    return np.broadcast_to(np.array([part, frame], np.float32), FLOW_SHAPE)


def _unlabelled(subject, frame, num_aus, flow):
    return draw_example(mean_face(), np.full(num_aus, -1), subject=subject, frame=frame,
                        flow=flow, flow_to=NO_FLOW if flow is None else frame + 1)


def write_unlisted_records(path, count=3):
    """Records of subject S99 dropped into an examples folder after preprocessing: no manifest
    lists them, so no stage may read them."""
    write_records(path, [draw_example(mean_face(), np.zeros(len(AU_SETS["bp4d"])), subject="S99",
                                      frame=i) for i in range(count)])


def write_manifest(root, contents: dict):
    """manifest.json listing the part files and stats.json under `root` as the preprocessing job
    lists them (path, bytes, sha256), with `contents` beside the list."""
    import hashlib
    import json
    names = sorted(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
                   for folder, _, found in os.walk(root) for name in found
                   if name.endswith(".tfrecord.gz") or name == "stats.json")
    files = []
    for name in names:
        data = open(os.path.join(root, name), "rb").read()
        files.append({"path": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    with open(os.path.join(root, "manifest.json"), "w") as f:
        json.dump({**contents, "files": files}, f)


def train_artifact(folder, model_file, fold=1, dataset="synthetic"):
    """A completed Train-stage folder holding a copy of `model_file`."""
    from components.base import write_completion_record
    folder.mkdir(parents=True)
    shutil.copy(model_file, folder / "model.keras")
    write_completion_record(folder, stage="train", parameters={"dataset": dataset, "fold": fold},
                            identity={"dataset": dataset})
    return folder
