"""The tf.data input pipeline: crops, the flip with its landmark permutation, determinism, and
reading exactly the files of the dataset's manifest."""
import json

import numpy as np
import pytest
import tensorflow as tf

from components.base import UserError
from components.train import input_pipeline as ip
from pipeline.manifest import corrupt_record_error
from schemas.face import AU_SETS, FLIP_PERMUTATION
from tests._tiny_records import (draw_example, mean_face, write_records, write_tiny_dataset,
                                  write_unlisted_records)

AUS = AU_SETS["bp4d"]
DOT = 22  # left inner eye corner: its mirror partner is 25


def _dot_location(image):
    """Centroid of the bright dot in a [-1, 1] image."""
    bright = image.mean(-1) > 0.6
    ys, xs = np.nonzero(bright)
    assert len(xs), "dot not found"
    return np.array([xs.mean(), ys.mean()])


@pytest.fixture(scope="module")
def dot_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("records") / "part1" / "a.tfrecord.gz"
    points = mean_face()
    points[DOT] = [83.0, 84.0]
    au = np.arange(len(AUS)) % 2
    write_records(path, [draw_example(points, au, dot_index=DOT, frame=i) for i in range(48)])
    return path, points, au


def test_flip_moves_the_drawn_point_to_the_permuted_landmark(dot_file):
    path, points, au = dot_file
    ds = ip.make_dataset([path], len(AUS), 176, training=True, batch_size=48, seed=3)
    images, labels = next(iter(ds))
    landmarks = labels["landmarks"].numpy().reshape(-1, 49, 2)
    partner = FLIP_PERMUTATION.index(DOT)  # position that holds point DOT after a flip
    assert partner == 25
    flips, offsets = 0, set()
    for image, lm in zip(images.numpy(), landmarks):
        dot = _dot_location(image)
        if np.allclose(lm[DOT], dot, atol=0.6):
            flipped = False
        else:
            flipped = True
            np.testing.assert_allclose(lm[partner], dot, atol=0.6)
        flips += flipped
        # The offset recovered from an unflipped landmark (or the mirrored one) is in 0..24.
        x = lm[partner if flipped else DOT][0]
        ox = (175 - x) if flipped else x
        offset = round(points[DOT][0] - ox)
        assert 0 <= offset <= 24
        offsets.add(offset)
    assert 10 <= flips <= 38  # p = 0.5 over 48 draws
    assert len(offsets) > 5
    # AU labels are not permuted by the flip; inter-ocular distance unchanged.
    np.testing.assert_array_equal(labels["au"].numpy(), np.tile(au, (48, 1)))
    assert np.allclose(labels["inter_ocular"].numpy(), labels["inter_ocular"].numpy()[0])


def test_flip_twice_is_identity_and_permutation_is_an_involution():
    assert all(FLIP_PERMUTATION[FLIP_PERMUTATION[i]] == i for i in range(49))
    lm = tf.constant(mean_face(jitter=2.0).reshape(-1))
    np.testing.assert_allclose(ip.flip_landmarks(ip.flip_landmarks(lm, 176), 176), lm, atol=1e-4)


def test_evaluation_takes_the_centre_crop(dot_file):
    path, points, _ = dot_file
    ds = ip.make_dataset([path], len(AUS), 176, training=False, batch_size=4, keep_metadata=True)
    images, labels = next(iter(ds))
    lm = labels["landmarks"].numpy().reshape(-1, 49, 2)
    np.testing.assert_allclose(lm[0], points - 12, atol=1e-4)
    np.testing.assert_allclose(_dot_location(images.numpy()[0]), points[DOT] - 12, atol=0.6)
    assert images.shape == (4, 176, 176, 3)
    assert -1.0 <= images.numpy().min() and images.numpy().max() <= 1.0
    assert labels["frame"].numpy().tolist() == [0, 1, 2, 3]


def test_smaller_crop_keeps_the_face_share_and_scales_landmarks(dot_file):
    path, points, _ = dot_file
    crop = 64
    size = ip.resized_size(crop)
    assert size == 73 and ip.center_offset(crop) == 4
    images, labels = next(iter(ip.make_dataset([path], len(AUS), crop, training=False,
                                               batch_size=2)))
    lm = labels["landmarks"].numpy().reshape(-1, 49, 2)[0]
    s = size / 200
    np.testing.assert_allclose(lm, (points + 0.5) * s - 0.5 - 4, atol=1e-4)
    np.testing.assert_allclose(labels["inter_ocular"].numpy()[0],
                               np.linalg.norm(points[19:25].mean(0) - points[25:31].mean(0)) * s,
                               rtol=1e-5)
    # The round trip used by serving.
    back = ip.crop_landmarks_to_aligned(labels["landmarks"], crop).numpy()[0].reshape(49, 2)
    np.testing.assert_allclose(back, points, atol=1e-3)
    # Training crops of a small crop stay inside the resized face.
    images, labels = next(iter(ip.make_dataset([path], len(AUS), crop, training=True,
                                               batch_size=48)))
    assert images.shape == (48, crop, crop, 3)


def test_epoch_data_is_a_function_of_seed_and_epoch(dot_file):
    path, _, _ = dot_file
    def first_batch(seed, epoch):
        ds = ip.make_dataset([path, path], len(AUS), 176, training=True, batch_size=16,
                             seed=seed, epoch=epoch, shuffle_buffer=64)
        images, labels = next(iter(ds))
        return labels["landmarks"].numpy()
    a = first_batch(1, 2)
    np.testing.assert_array_equal(a, first_batch(1, 2))
    assert not np.array_equal(a, first_batch(1, 3))
    assert not np.array_equal(a, first_batch(2, 2))


# -- the files read: the manifest's, checked ---------------------------------------------------
PER_PART = 4


@pytest.fixture
def tiny(tmp_path):
    return write_tiny_dataset(tmp_path / "examples dir", per_part=PER_PART)


def _flip_a_byte(path):
    """Same-size damage in the middle of a file (what a bad disk or a careless edit leaves)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_file_the_manifest_does_not_list_is_not_read(tiny):
    stray = tiny / "part1" / "extra-00000-of-00001.tfrecord.gz"
    write_unlisted_records(stray)
    files = ip.part_files(tiny, [1])
    assert files == [str(tiny / "part1" / "data-00000-of-00001.tfrecord.gz")]
    assert ip.count_examples(files) == PER_PART


@pytest.mark.parametrize("damaged", ["part2/data-00000-of-00001.tfrecord.gz", "stats.json"])
def test_a_same_size_corruption_is_named_before_anything_is_read(tiny, damaged):
    _flip_a_byte(tiny / damaged)
    with pytest.raises(UserError, match="differs from .*manifest.json") as error:
        ip.part_files(tiny, [1, 2])
    assert str(tiny / damaged) in str(error.value)


def test_a_record_damaged_while_reading_is_named(tiny):
    files = ip.part_files(tiny, [1])            # checked: intact now
    _flip_a_byte(tiny / "part1" / "data-00000-of-00001.tfrecord.gz")
    with pytest.raises(tf.errors.DataLossError) as error:
        for _ in ip.make_dataset(files, len(AUS), 32, training=False, batch_size=2):
            pass
    assert files[0] not in str(error.value)     # TensorFlow names no file
    raised = corrupt_record_error(tiny, files, error.value)
    assert isinstance(raised, UserError) and files[0] in str(raised)
    assert "inflate() failed" in str(raised) and "function_node" not in str(raised)  # zlib's why


def test_no_manifest_or_a_part_it_does_not_list_is_a_clear_error(tiny, tmp_path):
    with pytest.raises(UserError, match=r"manifest.json is missing"):
        ip.part_files(tmp_path / "nowhere", [2])
    manifest = json.loads((tiny / "manifest.json").read_text())
    manifest["files"] = [f for f in manifest["files"] if not f["path"].startswith("part2/")]
    (tiny / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="lists no TFRecord files of part 2"):
        ip.part_files(tiny, [2])


def _subject_ordered_files(folder, subjects=40, frames=15, files=4):
    """Records written subject by subject into a few files, as the preprocessing writes them;
    subject s is told by its AU labels (the bits of s), which training leaves untouched."""
    per_file = -(-subjects // files)
    paths = []
    for f in range(files):
        examples = [draw_example(mean_face(), (s >> np.arange(len(AUS))) & 1, subject=f"S{s}",
                                 frame=n)
                    for s in range(f * per_file, min((f + 1) * per_file, subjects))
                    for n in range(frames)]
        paths.append(folder / "part1" / f"examples-{f:05d}-of-{files:05d}.tfrecord.gz")
        write_records(paths[-1], examples)
    return paths


def _expected_distinct(counts, batch):
    """Mean number of distinct subjects in `batch` records drawn without replacement."""
    from math import comb
    total = sum(counts)
    return sum(1 - comb(total - n, batch) / comb(total, batch) for n in counts)


def test_every_epoch_is_a_uniform_shuffle_of_the_whole_split(tmp_path):
    subjects, frames, batch = 40, 15, 9
    files = _subject_ordered_files(tmp_path, subjects, frames)
    bits = 2 ** np.arange(len(AUS))
    distinct = []
    for epoch in range(2):
        # A buffer 1/24 of the split: BP4D's ~97k training frames against the default 4,096.
        ds = ip.make_dataset(files, len(AUS), 32, training=True, batch_size=batch, seed=5,
                             epoch=epoch, shuffle_buffer=subjects * frames // 24)
        seen = np.concatenate([labels["au"].numpy().astype(int) @ bits for _, labels in ds])
        # Each record exactly once per epoch: every subject's frames, no more, no fewer.
        np.testing.assert_array_equal(np.bincount(seen, minlength=subjects), [frames] * subjects)
        whole = len(seen) // batch * batch
        distinct += [len(set(b)) for b in seen[:whole].reshape(-1, batch)]
    expected = _expected_distinct([frames] * subjects, batch)
    assert abs(np.mean(distinct) - expected) < 0.1 * expected, (np.mean(distinct), expected)
