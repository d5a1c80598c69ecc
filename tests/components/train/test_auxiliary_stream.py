"""RTATL's data: the auxiliary stream (its pool, order, crops and flow targets) and
label_fraction (which coded frames keep their codes)."""
import numpy as np
import pytest
import tensorflow as tf

from components.train import input_pipeline as ip
from schemas.example import FLOW_SHAPE
from schemas.face import AU_SETS
from tests._tiny_records import (draw_example, mean_face, tiny_flow, write_records,
                                  write_tiny_dataset)

AUS = AU_SETS["bp4d"]
DOT = 22


def _place(crop, offsets, flip, flow):
    return ip.transform_flow(tf.constant(flow, tf.float32), crop, tf.constant(offsets, tf.int32),
                             tf.constant(flip)).numpy()


def test_flow_target_is_cropped_flipped_and_averaged_to_a_quarter_of_the_crop():
    rng = np.random.default_rng(0)
    flow = rng.normal(0, 3, FLOW_SHAPE).astype(np.float32)
    # Crop 176 (no resize): offsets that are multiples of 4 pick whole cells ...
    out = _place(176, [8, 4], False, flow)
    assert out.shape == (44, 44, 2)
    np.testing.assert_allclose(out, flow[2:46, 1:45], rtol=1e-6, atol=1e-6)
    # ... others average the two (or four) cells a 4 x 4 crop cell straddles.
    out = _place(176, [8, 6], False, flow)
    np.testing.assert_allclose(out, (flow[2:46, 1:45] + flow[2:46, 2:46]) / 2, atol=1e-5)
    # A flip mirrors the map and negates dx.
    flipped = _place(176, [8, 4], True, flow)
    np.testing.assert_allclose(flipped, flow[2:46, 1:45][:, ::-1] * [-1, 1], rtol=1e-6, atol=1e-6)
    # Crop 64: the face is resized 200 -> 73 first; vectors scale with it.
    out = _place(64, [3, 5], False, np.broadcast_to([3.0, -2.0], FLOW_SHAPE))
    assert out.shape == (16, 16, 2)
    np.testing.assert_allclose(out, np.broadcast_to([3 * 73 / 200, -2 * 73 / 200], out.shape),
                               rtol=1e-5)


@pytest.mark.parametrize("crop", [176, 64])
def test_flow_target_moves_with_the_face(tmp_path, crop):
    """A patch of flow around a drawn dot stays under the dot through the training crop, flip
    and resize of the auxiliary stream, scaled with the face and mirrored with it."""
    points = mean_face()
    points[DOT] = [83.0, 84.0]
    vector = np.array([4.0, -3.0], np.float32)
    flow = np.zeros(FLOW_SHAPE, np.float32)
    cy, cx = 84 // 4, 83 // 4
    flow[cy - 4:cy + 5, cx - 4:cx + 5] = vector    # 36 x 36 aligned pixels around the dot
    path = tmp_path / "a.tfrecord.gz"
    write_records(path, [draw_example(points, np.zeros(len(AUS)), dot_index=DOT, frame=i,
                                      flow=flow, flow_to=i + 1) for i in range(24)]
                  + [draw_example(points, np.zeros(len(AUS)), frame=99)])
    ds = ip.auxiliary_dataset([path], len(AUS), crop, tasks=("flow",), aus=AUS, patch=0.28,
                              batch_size=25, batches=1, seed=1)
    images, targets = next(iter(ds))
    assert set(targets) == {"flow", "has_flow"}
    assert targets["flow"].shape == (25, crop // 4, crop // 4, 2)
    has_flow = targets["has_flow"].numpy()
    assert sorted(has_flow.tolist()) == [0.0] + [1.0] * 24
    scale = ip.resized_size(crop) / 200
    flips = 0
    for image, target in zip(images.numpy()[has_flow == 1], targets["flow"].numpy()[has_flow == 1]):
        grey = image.mean(-1)
        ys, xs = np.nonzero(grey > (grey.max() + np.median(grey)) / 2)   # the dot
        x, y = xs.mean(), ys.mean()
        left = x < crop / 2    # the dot (aligned x 83) is left of centre unless flipped
        flips += not left
        got = target[int(y) // 4, int(x) // 4]
        np.testing.assert_allclose(got, vector * scale * ([1, 1] if left else [-1, 1]), rtol=1e-3)
        np.testing.assert_allclose(target[0, 0], [0, 0], atol=1e-6)   # far from the patch
    assert 0 < flips < 24
    np.testing.assert_array_equal(targets["flow"].numpy()[has_flow == 0], 0)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """Two files of 10 and 7 records, each named by its flow target (dy = frame)."""
    root = tmp_path_factory.mktemp("pool")
    files = []
    for f, count in enumerate((10, 7)):
        files.append(root / f"p{f}.tfrecord.gz")
        write_records(files[-1], [draw_example(mean_face(), np.full(len(AUS), -1),
                                               subject=f"S{f}", frame=100 * f + n,
                                               flow=tiny_flow(1, 100 * f + n), flow_to=0)
                                  for n in range(count)])
    return files


def _frames(files, crop=32, **kwargs):
    ds = ip.auxiliary_dataset(files, len(AUS), crop, tasks=("flow",), aus=AUS, patch=0.28,
                              **kwargs)
    scale = ip.resized_size(crop) / 200
    return [int(round(float(t[0, 0, 1]) / scale)) for _, targets in ds for t in targets["flow"]]


def test_the_auxiliary_order_is_a_function_of_seed_and_epoch_and_refills_a_short_pool(pool):
    everything = sorted(list(range(10)) + list(range(100, 107)))
    one = _frames(pool, batch_size=4, batches=4, seed=3, epoch=2, shuffle_buffer=5)
    assert len(one) == 16 and len(set(one)) == 16 and set(one) <= set(everything)
    assert one == _frames(pool, batch_size=4, batches=4, seed=3, epoch=2, shuffle_buffer=5)
    assert one != _frames(pool, batch_size=4, batches=4, seed=3, epoch=3, shuffle_buffer=5)
    assert one != _frames(pool, batch_size=4, batches=4, seed=4, epoch=2, shuffle_buffer=5)
    # 40 faces from a pool of 17: the whole pool twice in two orders, then 6 of a third.
    long = _frames(pool, batch_size=8, batches=5, seed=3, epoch=2, shuffle_buffer=5)
    assert sorted(long[:17]) == everything and sorted(long[17:34]) == everything
    assert long[:17] != long[17:34] and len(set(long[34:])) == 6
    # A subject split leaves the held-out subject's faces out of the pool.
    held_out = _frames(pool, batch_size=5, batches=3, seed=3, subject_split=("train", ("S0",)))
    assert sorted(held_out[:7]) == list(range(100, 107)) and len(held_out) == 15


def test_the_auxiliary_order_differs_from_the_labelled_one(pool):
    labelled = ip.make_dataset(pool, len(AUS), 32, training=True, batch_size=17, seed=3,
                               epoch=2, keep_metadata=True)
    frames = next(iter(labelled))[1]["frame"].numpy().tolist()
    assert frames != _frames(pool, batch_size=17, batches=1, seed=3, epoch=2)


def test_the_pool_is_the_training_parts_coded_and_unlabelled_files(tmp_path):
    examples = write_tiny_dataset(tmp_path / "examples", per_part=2, unlabelled=3, outside=2)
    pool = ip.part_files(examples, [2, 3]) + ip.unlabelled_files(examples, [2, 3])
    assert [str(p.relative_to(examples)) for p in map(type(tmp_path), pool)] == [
        "part2/data-00000-of-00001.tfrecord.gz", "part3/data-00000-of-00001.tfrecord.gz",
        "unlabelled/part2/frames-00000-of-00001.tfrecord.gz",
        "unlabelled/part3/frames-00000-of-00001.tfrecord.gz",
        "unlabelled/outside/frames-00000-of-00001.tfrecord.gz"]
    assert sum(ip.file_record_counts(pool, examples)) == 2 + 2 + 2 + 3 + 3
    # A folder written before unlabelled frames existed: none.
    assert ip.unlabelled_files(write_tiny_dataset(tmp_path / "old", per_part=2), [1]) == []


# -- label_fraction --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """400 records of 4 subjects x 2 tasks x 50 frames in two files."""
    root = tmp_path_factory.mktemp("coded")
    examples = [draw_example(mean_face(), np.zeros(len(AUS)), subject=f"S{s}", task=f"T{t}",
                             frame=n) for s in range(4) for t in range(2) for n in range(50)]
    files = [root / "a.tfrecord.gz", root / "b.tfrecord.gz"]
    write_records(files[0], examples[:150])
    write_records(files[1], examples[150:])
    return files, examples


def _kept(examples, fraction, seed):
    keep = ip.keeps_codes(fraction, seed)
    return {i for i, e in enumerate(examples) if bool(keep(tf.constant(e)))}


def test_label_fraction_keeps_a_stable_share_of_the_coded_frames(coded):
    files, examples = coded
    half = _kept(examples, 0.5, seed=0)
    assert 160 <= len(half) <= 240                           # binomial(400, 0.5): +- 4 sd
    assert _kept(examples, 0.25, seed=0) < half              # a smaller fraction keeps fewer
    assert _kept(examples, 0.5, seed=1) != half               # another seed, another choice
    assert len(_kept(examples, 1.0, seed=0)) == 400
    # Stable: FarmHash of (seed, subject, task, frame) on every machine; these were kept when
    # this test was written (a change of hash would silently change every subset).
    assert sorted(half)[:8] == PINNED_HALF
    # What the labelled stream reads: exactly those, in any epoch; count_examples agrees.
    def read(epoch):
        ds = ip.make_dataset(files, len(AUS), 32, training=True, batch_size=64, seed=0,
                             epoch=epoch, label_fraction=0.5, keep_metadata=True)
        return sorted((s.decode(), t.decode(), int(f)) for _, labels in ds for s, t, f in zip(
            labels["subject"].numpy(), labels["task"].numpy(), labels["frame"].numpy()))
    expected = sorted((f"S{i // 100}", f"T{i // 50 % 2}", i % 50) for i in half)
    assert read(0) == expected == read(1)
    assert ip.count_examples(files, label_fraction=0.5, seed=0) == len(half)
    assert ip.count_examples(files, ("validation", ("S1",)), 0.5, 0) == \
        len([i for i in half if i // 100 == 1])


PINNED_HALF = [0, 1, 2, 4, 6, 7, 14, 17]



def test_inpainting_masks_au_regions_of_the_face_and_keeps_it_as_the_target(pool):
    ds = ip.auxiliary_dataset(pool, len(AUS), 64, tasks=("inpainting", "flow"), aus=AUS,
                              patch=0.28, batch_size=17, batches=1, seed=2)
    images, targets = next(iter(ds))
    images, mask = images.numpy(), targets["inpainting_mask"].numpy()
    face = targets["inpainting_target"].numpy()
    assert set(targets) == {"inpainting_target", "inpainting_mask", "flow", "has_flow"}
    assert mask.shape == (17, 64, 64, 1) and set(np.unique(mask)) == {0.0, 1.0}
    # With both tasks every other face is masked for inpainting and counts for no flow; the
    # others are whole faces for the flow task.
    masked = mask.sum(axis=(1, 2, 3))
    assert np.all(masked[1::2] == 0) and np.all(targets["has_flow"].numpy()[0::2] == 0)
    assert targets["has_flow"].numpy()[1::2].any()
    # 1 to 3 AUs, two squares of 17 or 18 pixels a side each (0.28 of 64), overlapping or not.
    assert np.all(masked[0::2] >= 17 * 17) and np.all(masked[0::2] <= 6 * 18 * 18)
    assert len({m.tobytes() for m in mask[0::2]}) > 1
    np.testing.assert_array_equal(images, face * (1 - mask))     # masked pixels: 0, grey
    assert face.min() >= -1 and face.max() <= 1
    # With inpainting alone, every face is masked.
    alone = ip.auxiliary_dataset(pool, len(AUS), 64, tasks=("inpainting",), aus=AUS,
                                 patch=0.28, batch_size=17, batches=1, seed=2)
    _, targets = next(iter(alone))
    assert np.all(targets["inpainting_mask"].numpy().sum(axis=(1, 2, 3)) >= 17 * 17)
