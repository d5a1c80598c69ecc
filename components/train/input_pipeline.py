"""tf.data over the preprocessed TFRecords: parse, crop, flip, normalise, batch.

Every example goes through `schemas.example.parse_examples` (the one description of an example).

Geometry (docs/data.md). The aligned face is ALIGNED_SIZE (200) square. At the paper's crop of
176 the training crop takes offsets 0..24 in x and y and evaluation takes the centre (offset 12).
For a smaller crop (the synthetic preset) the face is first resized to `resized_size(crop)` =
round(crop * 200 / 176), so the crop keeps the same share of the face; landmarks and the
inter-ocular distance are scaled the same way (pixel centres: x' = (x + 0.5) * s - 0.5).

Training: random crop, horizontal flip with p = 0.5: the image is mirrored, landmark x becomes
(W - 1) - x and the points are reordered by `schemas.face.FLIP_PERMUTATION`. AU labels are not
permuted: every AU here is bilateral (both of its centres are used), so a mirrored face shows
the same AUs.

Pixels are RGB scaled to [-1, 1]. Labels: {"au": (n_au,) float32 with -1 unknown,
"landmarks": (98,) float32 in crop pixels, "inter_ocular": () float32 in crop pixels}.

Shuffle (training). Every epoch is a uniform random order of the whole training split, the
authors' "shuffle the whole list every epoch" (records are written subject by subject, so
reading files through a buffer gives batches of one or two subjects). GZIP records cannot be
read at an offset, so the epoch's permutation is served in windows of `shuffle_buffer` records:
window w takes one pass over the files (in parallel), keeps the serialized records whose place
in the permutation falls in w and puts them in that order. Memory holds serialized records of
about three windows (the one being read, one ready, one being consumed), never decoded images;
a split of N records costs ceil(N / shuffle_buffer) reading passes per epoch, overlapped with
training.

label_fraction (the train stage's): a record keeps its AU codes when a stable hash of (seed,
subject, task, frame) falls in that share of its range (keeps_codes); the others leave the
labelled stream, so an epoch is that much shorter.

Auxiliary stream (RTATL's self-supervised tasks; auxiliary_dataset): faces from the training
parts' coded files (every one, whatever label_fraction keeps, read as images only) and their
unlabelled files, in a shuffle of their own per epoch, cropped and flipped like training faces,
the flow target moved with its face (transform_flow) and AU regions masked for inpainting
(jaa_keras.auxiliary.roi_mask); zipped batch by batch with the labelled stream (with_auxiliary).

Determinism: the permutation and every random crop/flip of epoch e are a function of (seed, e)
alone: the permutation comes from numpy's RNG seeded with (seed, e), and each example's
augmentation uses stateless random ops seeded by (seed, epoch, its position). A training run
restarted at epoch e therefore sees exactly the batches it would have seen. The same holds for
the auxiliary stream (its permutations drawn with (seed, e, k), its seeds apart from the
labelled ones).
"""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from components.base import UserError
from pipeline.manifest import (MANIFEST_FILE, listed_entries, listed_files,
                               listed_unlabelled_files)
from schemas.example import ALIGNED_SIZE, FLOW_STRIDE, parse_examples
from schemas.face import FLIP_PERMUTATION, NUM_LANDMARKS

PAPER_CROP = 176
AUTOTUNE = tf.data.AUTOTUNE


def resized_size(crop_size: int) -> int:
    """Side the aligned face is resized to before cropping (200 at the paper's 176 crop)."""
    if crop_size >= PAPER_CROP:
        return ALIGNED_SIZE
    return int(round(crop_size * ALIGNED_SIZE / PAPER_CROP))


def center_offset(crop_size: int) -> int:
    return (resized_size(crop_size) - crop_size) // 2


def part_files(examples_dir: str | os.PathLike, parts) -> list[str]:
    """The TFRecord files of the given parts (1-based) as the dataset's manifest.json lists them,
    each checked against its recorded size and sha256 first (pipeline.manifest: what the check
    costs, and what a file damaged later gives). A file the manifest does not list is not read."""
    return listed_files(examples_dir, parts)


def _resize(image, landmarks, inter_ocular, crop_size):
    size = resized_size(crop_size)
    if size == ALIGNED_SIZE:
        return tf.cast(image, tf.float32), landmarks, inter_ocular
    scale = size / ALIGNED_SIZE
    image = tf.image.resize(tf.cast(image, tf.float32), [size, size], method="bilinear",
                            antialias=True)
    landmarks = (landmarks + 0.5) * scale - 0.5
    return image, landmarks, inter_ocular * scale


def center_crop_images(images_uint8: tf.Tensor, crop_size: int) -> tf.Tensor:
    """(..., 200, 200, 3) uint8 -> (..., crop, crop, 3) float32 in [-1, 1]: evaluation and serving."""
    size = resized_size(crop_size)
    images = tf.cast(images_uint8, tf.float32)
    if size != ALIGNED_SIZE:
        images = tf.image.resize(images, [size, size], method="bilinear", antialias=True)
    o = center_offset(crop_size)
    images = images[..., o:o + crop_size, o:o + crop_size, :]
    return images / 127.5 - 1.0


def crop_landmarks_to_aligned(landmarks: tf.Tensor, crop_size: int) -> tf.Tensor:
    """Landmarks (..., 98) in centre-crop pixels -> the aligned 200 x 200 frame (serving)."""
    scale = resized_size(crop_size) / ALIGNED_SIZE
    return (tf.cast(landmarks, tf.float32) + center_offset(crop_size) + 0.5) / scale - 0.5


def flip_landmarks(landmarks: tf.Tensor, width: int) -> tf.Tensor:
    """Mirror (98,) landmarks of a `width`-wide image: x -> (W - 1) - x, then permute the points."""
    points = tf.reshape(landmarks, [NUM_LANDMARKS, 2])
    points = tf.stack([(width - 1.0) - points[:, 0], points[:, 1]], axis=1)
    points = tf.gather(points, FLIP_PERMUTATION)
    return tf.reshape(points, [2 * NUM_LANDMARKS])


def _placement(crop_size: int, training: bool, seed=None):
    """(offsets (y, x), flip) of a face's crop: random in training (stateless (2,) `seed`),
    else the centre without flip."""
    if not training:
        return tf.constant([center_offset(crop_size)] * 2, tf.int32), tf.constant(False)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    size = resized_size(crop_size)
    offsets = tf.random.stateless_uniform([2], seeds[0], 0, size - crop_size + 1, tf.int32)
    return offsets, tf.random.stateless_uniform([], seeds[1]) < 0.5


def _place_face(example: dict, crop_size: int, offsets, flip):
    """Resize, crop at `offsets`, flip: (image float32 [-1, 1], landmarks, inter-ocular)."""
    image, landmarks, inter_ocular = _resize(example["image"], example["landmarks"],
                                             example["inter_ocular"], crop_size)
    oy, ox = offsets[0], offsets[1]
    image = tf.slice(image, [oy, ox, 0], [crop_size, crop_size, 3])
    shift = tf.tile(tf.stack([tf.cast(ox, tf.float32), tf.cast(oy, tf.float32)]), [NUM_LANDMARKS])
    landmarks = landmarks - shift
    image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
    landmarks = tf.cond(flip, lambda: flip_landmarks(landmarks, crop_size), lambda: landmarks)
    image = tf.ensure_shape(image / 127.5 - 1.0, [crop_size, crop_size, 3])
    return image, tf.ensure_shape(landmarks, [2 * NUM_LANDMARKS]), inter_ocular


def transform_example(example: dict, crop_size: int, training: bool, seed=None):
    """One parsed example -> (image float32 [-1, 1], labels dict). `seed`: stateless (2,) int."""
    offsets, flip = _placement(crop_size, training, seed)
    image, landmarks, inter_ocular = _place_face(example, crop_size, offsets, flip)
    labels = {"au": tf.cast(example["au"], tf.float32), "landmarks": landmarks,
              "inter_ocular": tf.cast(inter_ocular, tf.float32)}
    return image, labels


def transform_flow(flow: tf.Tensor, crop_size: int, offsets, flip) -> tf.Tensor:
    """A record's flow target (FLOW_SHAPE, aligned pixels, one vector per FLOW_STRIDE^2 aligned
    pixels) -> (crop/4, crop/4, 2) in crop pixels, moved with its face: resized (vectors
    scaled by the same factor), cropped at `offsets`, mirrored by `flip` (dx negated), then
    area-averaged to one vector per 4 x 4 crop pixels, the resolution of the flow head."""
    dense = tf.repeat(tf.repeat(flow, FLOW_STRIDE, axis=0), FLOW_STRIDE, axis=1)  # 200 x 200
    size = resized_size(crop_size)
    if size != ALIGNED_SIZE:
        dense = tf.image.resize(dense, [size, size], method="area") * (size / ALIGNED_SIZE)
    dense = tf.slice(dense, [offsets[0], offsets[1], 0], [crop_size, crop_size, 2])
    dense = tf.cond(flip, lambda: tf.reverse(dense, axis=[1]) * [-1.0, 1.0], lambda: dense)
    quarter = crop_size // 4
    return tf.ensure_shape(tf.nn.avg_pool2d(dense[None], 4, 4, "VALID")[0], [quarter, quarter, 2])


def make_dataset(files, num_aus: int, crop_size: int, *, training: bool, batch_size: int,
                 seed: int = 0, epoch: int = 0, shuffle_buffer: int = 4096,
                 drop_remainder: bool = False, keep_metadata: bool = False,
                 subject_split: tuple[str, tuple[str, ...]] | None = None,
                 num_examples: int | None = None,
                 record_counts: list[int] | None = None,
                 label_fraction: float = 1.0) -> tf.data.Dataset:
    """The batched dataset of one epoch (training) or of one pass (evaluation, in file order).

    shuffle_buffer: training reads its permutation in windows of this many records (module doc).
    keep_metadata: add "subject", "task", "frame" to the labels dict (evaluation reports, and
      naming the records of a training batch whose loss was not finite).
    subject_split: ("validation", subjects) keeps only these subjects' examples, ("train",
      subjects) all others: a subject-exclusive hold-out inside the training parts.
    num_examples: the number of examples (count_examples), so that Keras knows the epoch length.
    record_counts: records per file (file_record_counts); counted here when not given.
    label_fraction: keep only the records whose codes this fraction keeps (keeps_codes, `seed`).
    """
    files = [os.fspath(f) for f in files]
    if training:
        counts = record_counts if record_counts is not None else file_record_counts(files)
        ds = shuffled_records(files, counts, seed, epoch, shuffle_buffer)
    else:
        ds = tf.data.Dataset.from_tensor_slices(files).interleave(
            record_dataset, cycle_length=min(4, max(1, len(files))),
            num_parallel_calls=AUTOTUNE,
            deterministic=True)
    if subject_split is not None:
        ds = ds.filter(_subject_filter(*subject_split))
    if label_fraction < 1:
        ds = ds.filter(keeps_codes(label_fraction, seed))
    if num_examples is not None:
        ds = ds.apply(tf.data.experimental.assert_cardinality(num_examples))
    epoch_seed = tf.constant(_epoch_seed(seed, epoch), tf.int64)

    def _map(position, serialized):
        example = parse_examples(serialized, num_aus)
        image, labels = transform_example(example, crop_size, training,
                                          tf.stack([epoch_seed, position]))
        if keep_metadata:
            labels.update(subject=example["subject"], task=example["task"], frame=example["frame"])
        return image, labels
    ds = ds.enumerate().map(_map, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(AUTOTUNE)
    return ds.with_options(WITHOUT_AUTOTUNING)


def unlabelled_files(examples_dir, parts) -> list[str]:
    """The unlabelled frames' files of `parts` and of the subjects in no part, checked like
    part_files (pipeline.manifest.listed_unlabelled_files); none in a folder written before
    unlabelled frames existed. With the parts' coded files (read as images only, whatever
    label_fraction keeps) they are the auxiliary tasks' pool."""
    return listed_unlabelled_files(examples_dir, parts)


def auxiliary_dataset(files, num_aus: int, crop_size: int, *, tasks, aus, patch: float,
                      batch_size: int, batches: int, seed: int = 0, epoch: int = 0,
                      shuffle_buffer: int = 4096, record_counts: list[int] | None = None,
                      pool_size: int | None = None,
                      subject_split: tuple[str, tuple[str, ...]] | None = None
                      ) -> tf.data.Dataset:
    """The auxiliary tasks' stream of one training epoch: `batches` batches of `batch_size`
    (masked face, targets) from the pool `files` (part_files + unlabelled_files).

    Order: a uniform shuffle of the pool (within `subject_split`; `pool_size`: its records,
    counted when not given), a
    function of (seed, epoch) drawn apart from the labelled stream's; a pool shorter than the
    epoch needs is shuffled again (another order) as often as needed. Each face is cropped and
    flipped as a training face, with stateless seeds of its own. Targets, per task in `tasks`:
      inpainting  "inpainting_target" the unmasked face in [-1, 1], "inpainting_mask" (crop,
                  crop, 1) 1 on the pixels jaa_keras.auxiliary.roi_mask hides (set to 0 in the
                  face given to the network: the grey of [-1, 1]); `aus` and `patch` shape it
      flow        "flow" (crop/4, crop/4, 2) in crop pixels (transform_flow), "has_flow" 1.0
                  for a record with a flow target, else 0.0 (its zero "flow" then counts for
                  nothing)
    With both tasks, the faces alternate: even places in the stream serve inpainting (masked,
    their has_flow 0), odd ones flow (whole, an empty mask). The flow head then sees whole faces
    (a masked face hides part of the motion it is asked for) at no extra cost.
    """
    files = [os.fspath(f) for f in files]
    counts = record_counts if record_counts is not None else file_record_counts(files)
    if pool_size is None:
        pool_size = sum(counts) if subject_split is None else count_examples(files, subject_split)
    pool = int(pool_size)
    if pool <= 0:
        raise UserError("the auxiliary tasks have no face to train on")
    needed = batches * batch_size
    ds = None
    for again in range(-(-needed // pool)):
        order = shuffled_records(files, counts, seed, epoch, shuffle_buffer, stream=1 + again)
        if subject_split is not None:
            order = order.filter(_subject_filter(*subject_split))
        ds = order if ds is None else ds.concatenate(order)
    epoch_seed = tf.constant(_epoch_seed(seed, epoch), tf.int64)

    def _map(position, serialized):
        example = parse_examples(serialized, num_aus, with_flow=True)
        # Seeds (epoch seed, -1 - position): never one of the labelled stream's (>= 0).
        return transform_auxiliary(example, crop_size, tf.stack([epoch_seed, -1 - position]),
                                   tasks, aus, patch, position)
    ds = ds.take(needed).enumerate().map(_map, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(AUTOTUNE)
    return ds.with_options(WITHOUT_AUTOTUNING)


def transform_auxiliary(example: dict, crop_size: int, seed, tasks, aus, patch: float,
                        position=0, training: bool = True):
    """One parsed example (with_flow) at `position` in the stream -> (face for the network,
    targets): auxiliary_dataset; `training` False: the centre crop (the evaluation's figures)."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    offsets, flip = _placement(crop_size, training, seeds[0])
    image, landmarks, _ = _place_face(example, crop_size, offsets, flip)
    # 1.0 where this face serves inpainting (with both tasks: every other face).
    inpainted = tf.cast(tf.equal(position % 2, 0), tf.float32) if len(tasks) == 2 else 1.0
    targets = {}
    if "inpainting" in tasks:
        from jaa_keras.auxiliary import roi_mask
        mask = roi_mask(landmarks, aus, crop_size, patch, seeds[1]) * inpainted
        targets.update(inpainting_target=image, inpainting_mask=mask)
        image = image * (1.0 - mask)
    if "flow" in tasks:
        flow_weight = 1.0 - inpainted if "inpainting" in tasks else 1.0
        targets.update(flow=transform_flow(example["flow"], crop_size, offsets, flip),
                       has_flow=tf.cast(example["has_flow"], tf.float32) * flow_weight)
    return image, targets


def with_auxiliary(labelled: tf.data.Dataset, auxiliary: tf.data.Dataset) -> tf.data.Dataset:
    """Batch by batch: x = {"images", "auxiliary_images"}, y = the labels and the auxiliary
    targets in one dict (what JaaNet and JaaNetLoss take when auxiliary tasks train)."""
    def merge(labelled_batch, auxiliary_batch):
        (images, labels), (auxiliary_images, targets) = labelled_batch, auxiliary_batch
        return {"images": images, "auxiliary_images": auxiliary_images}, {**labels, **targets}
    ds = tf.data.Dataset.zip((labelled, auxiliary)).map(merge).prefetch(AUTOTUNE)
    return ds.with_options(WITHOUT_AUTOTUNING)


# tf.data's autotuning thread is joined when an epoch's iterator is destroyed, and on 2 busy cores
# that join took 16-18 s after about one epoch in three of the default run (20-s epochs;
# `python -m benchmarks.bench_input_pipeline --fit_epochs 5`, BENCHMARKS.md). Without
# autotuning, AUTOTUNE means one parallel call per core, which is what autotuning chose here.
WITHOUT_AUTOTUNING = tf.data.Options()
WITHOUT_AUTOTUNING.autotune.enabled = False


def shuffled_records(files, record_counts, seed: int, epoch: int, window: int,
                     stream: int = 0) -> tf.data.Dataset:
    """The serialized records of `files` in the uniform random order of epoch (seed, epoch);
    `stream` > 0 draws another order of the same epoch (the auxiliary stream's)."""
    if len(record_counts) != len(files):
        raise ValueError(f"{len(record_counts)} record counts for {len(files)} files")
    total = int(sum(record_counts))
    window = max(1, min(int(window), total))
    # place[i]: where record i (numbered through the files in order) comes in this epoch.
    place = np.empty(total, np.int64)
    rng = np.random.default_rng([seed, epoch] + ([stream] if stream else []))
    place[rng.permutation(total)] = np.arange(total)
    place = tf.constant(place)
    starts = np.concatenate([[0], np.cumsum(record_counts)[:-1]]).astype(np.int64)
    numbered_files = tf.data.Dataset.from_tensor_slices((files, starts))

    def read_window(w):
        # Arrival order does not matter (the window is sorted below): read files in parallel.
        numbered = numbered_files.interleave(
            lambda file, start: record_dataset(file).enumerate(start),
            cycle_length=min(8, len(files)),
            num_parallel_calls=AUTOTUNE, deterministic=False)
        mine = numbered.map(lambda i, record: (tf.gather(place, i), record)).filter(
            lambda where, _: where // window == w)
        return mine.batch(window)

    def in_place(where, records):
        return tf.gather(records, tf.argsort(where))
    windows = tf.data.Dataset.range(-(-total // window)).flat_map(read_window).prefetch(1)
    return windows.map(in_place).unbatch()


def file_record_counts(files, examples_dir=None) -> list[int]:
    """Records in each file: from the preprocessing's manifest.json when it lists the file,
    else counted (one pass)."""
    listed = {}
    if examples_dir and os.path.isfile(os.path.join(os.fspath(examples_dir), MANIFEST_FILE)):
        listed = {os.path.normpath(os.path.join(os.fspath(examples_dir), entry["path"])):
                  int(entry["records"])
                  for entry in listed_entries(examples_dir) if entry.get("records") is not None}
    counts = []
    for f in map(os.fspath, files):
        known = listed.get(os.path.normpath(f))
        counts.append(known if known is not None else _count(record_dataset(tf.constant(f))))
    return counts


def count_examples(files, subject_split: tuple[str, tuple[str, ...]] | None = None,
                   label_fraction: float = 1.0, seed: int = 0) -> int:
    """Records in `files` (within `subject_split` and `label_fraction`, as make_dataset takes
    them)."""
    ds = tf.data.TFRecordDataset([os.fspath(f) for f in files],
                                 compression_type=_compression(tf.constant(os.fspath(files[0]))))
    if subject_split is not None:
        ds = ds.filter(_subject_filter(*subject_split))
    if label_fraction < 1:
        ds = ds.filter(keeps_codes(label_fraction, seed))
    return _count(ds)


# Resolution of label_fraction: a record keeps its codes when the hash of its key falls in the
# first round(fraction * LABEL_BUCKETS) of LABEL_BUCKETS buckets.
LABEL_BUCKETS = 1 << 20


def keeps_codes(fraction: float, seed: int):
    """serialized record -> whether `fraction` (the train stage's label_fraction) keeps its AU
    codes under `seed`. A stable hash (FarmHash Fingerprint64, the same on every machine and
    run) of (seed, subject, task, frame) decides, so a record is kept or not whatever its file,
    order or epoch, and the kept share of a large split is `fraction`."""
    kept_buckets = tf.constant(int(round(fraction * LABEL_BUCKETS)), tf.int64)
    spec = {"subject": tf.io.FixedLenFeature([], tf.string),
            "task": tf.io.FixedLenFeature([], tf.string),
            "frame": tf.io.FixedLenFeature([], tf.int64)}

    def keep(serialized):
        key = tf.io.parse_single_example(serialized, spec)
        joined = tf.strings.join([str(int(seed)), key["subject"], key["task"],
                                  tf.strings.as_string(key["frame"])], separator="\x1f")
        return tf.strings.to_hash_bucket_fast(joined, LABEL_BUCKETS) < kept_buckets
    return keep


def _count(ds: tf.data.Dataset) -> int:
    return int(ds.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1).numpy())


def record_dataset(file):
    """The serialized records of one TFRecord file (GZIP or plain, by its name)."""
    return tf.data.TFRecordDataset(file, compression_type=_compression(file))


def _subject_filter(which: str, subjects):
    held_out = tf.constant(sorted(subjects) or [""], tf.string)
    keep_held_out = which == "validation"

    def keep(serialized):
        subject = tf.io.parse_single_example(
            serialized, {"subject": tf.io.FixedLenFeature([], tf.string)})["subject"]
        return tf.equal(tf.reduce_any(tf.equal(held_out, subject)), keep_held_out)
    return keep


def _epoch_seed(seed: int, epoch: int) -> int:
    return int((seed * 1_000_003 + epoch * 7_919 + 17) % (2**31 - 1))


def _compression(filename: tf.Tensor):
    # Files written by the pipeline are GZIP (*.tfrecord.gz); plain *.tfrecord also works.
    return tf.where(tf.strings.regex_full_match(filename, r".*\.gz"), "GZIP", "")
