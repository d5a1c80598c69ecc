"""Flow targets (pipeline/flow.py, FlowTargets): a real optical flow between aligned faces t and
t + k of a sequence, checked on faces moved by a known shift; pairing across chunk boundaries."""
import apache_beam as beam
import cv2
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from skimage import data

from pipeline.align import alignment_matrix
from pipeline.flow import flow_target, grey_face
from pipeline.sources.records import RawFrame
from pipeline.transforms import AlignFrames, EncodedFace, EncodeExamples, FlowTargets
from schemas.example import FLOW_SHAPE, parse_examples
from tests._tiny_records import mean_face

SHIFT = 3.0   # aligned pixels
# Away from the border, where a shifted image has no counterpart (grey fill, occlusion).
INSIDE = slice(5, 45)


def _texture(size=200):
    """A real photo's texture (the astronaut's face and suit), grey."""
    return cv2.resize(cv2.cvtColor(data.astronaut()[20:330, 60:370], cv2.COLOR_RGB2GRAY),
                      (size, size), interpolation=cv2.INTER_AREA)


def _moved(image, dx, dy=0.0):
    return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), image.shape[1::-1],
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def test_the_flow_of_a_face_and_the_same_face_moved_3_pixels_is_3_pixels_that_way():
    face = _texture()
    right = flow_target(face, _moved(face, SHIFT))
    assert right.shape == FLOW_SHAPE and right.dtype == np.float32
    np.testing.assert_allclose(right[INSIDE, INSIDE].mean(axis=(0, 1)), [SHIFT, 0], atol=0.15)
    assert np.median(np.abs(right[INSIDE, INSIDE, 0] - SHIFT)) < 0.2
    up = flow_target(face, _moved(face, 0, -SHIFT))   # y grows downwards
    np.testing.assert_allclose(up[INSIDE, INSIDE].mean(axis=(0, 1)), [0, -SHIFT], atol=0.15)
    np.testing.assert_allclose(flow_target(face, face), 0, atol=0.05)


def _encoded(sequence, frame, jpeg):
    return EncodedFace("bp4d", sequence, "T1", frame, f"{frame}.jpg", "f.mat", np.zeros(12),
                       jpeg, mean_face(), 60.0)


def _pipeline():
    return test_pipeline.TestPipeline(runner=FnApiRunner())


def test_each_face_gets_the_flow_to_frame_t_plus_k_of_its_own_sequence_across_chunks():
    """Chunks of 3 frames, k = 2: a face's partner is in the next chunk for the last two frames
    of a chunk. Frame 5 of F001 is missing (rejected before), so frame 3 has no flow target;
    F003's frames never pair with F001's."""
    jpeg = cv2.imencode(".jpg", _texture())[1].tobytes()
    faces = [_encoded("F001", f, jpeg) for f in range(10) if f != 5] + [
        _encoded("F003", f, jpeg) for f in (0, 1, 4)]
    with _pipeline() as pipeline:
        out = pipeline | beam.Create(faces) | FlowTargets(offset=2, chunk=3)
        assert_that(out["faces"] | beam.Map(lambda f: (f.subject, f.frame, f.flow_to,
                                                          None if f.flow is None else f.flow.shape)),
                    equal_to([("F001", f, f + 2 if f + 2 in (2, 3, 4, 6, 7, 8, 9) else None,
                               FLOW_SHAPE if f + 2 in (2, 3, 4, 6, 7, 8, 9) else None)
                              for f in range(10) if f != 5]
                             + [("F003", 0, None, None), ("F003", 1, None, None),
                                ("F003", 4, None, None)]), label="faces")
        assert_that(out["rejected"], equal_to([]), label="rejected")


def test_a_flow_target_through_alignment_and_the_schema(tmp_path):
    """A raw frame and the same raw frame with its content moved by 3 aligned pixels (the
    landmarks unchanged) become records whose flow is that shift, in aligned pixels; a frame
    whose partner was rejected and the last frames have none."""
    raw = cv2.cvtColor(cv2.resize(_texture(), (300, 300)), cv2.COLOR_GRAY2RGB)
    landmarks = mean_face() + 50
    scale = alignment_matrix(landmarks)[0, 0]   # eyes level: no rotation
    moved = cv2.warpAffine(raw, np.float32([[1, 0, SHIFT / scale], [0, 1, 0]]), (300, 300),
                           borderMode=cv2.BORDER_REFLECT)

    def frame(number, image, problem=None):
        return RawFrame("bp4d", "F001", "T1", number, image, None if problem else landmarks,
                        np.zeros(12, np.int64), f"raw/{number}.jpg", "f.mat", problem,
                        coded=number != 3)

    frames = [frame(1, raw), frame(3, moved), frame(4, raw), frame(6, None, "image missing")]
    with _pipeline() as pipeline:
        aligned = pipeline | beam.Create(frames) | AlignFrames()
        encoded = aligned["aligned"] | EncodeExamples("bp4d", jpeg_quality=95, flow_offset=2)
        _ = (encoded["examples"] | beam.Map(lambda e: e.serialized)
             | beam.io.WriteToTFRecord(str(tmp_path / "out"), num_shards=1))
    [path] = tmp_path.glob("out*")
    batch = parse_examples(tf.constant(list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())),
                           12, with_flow=True)
    rows = {int(f): i for i, f in enumerate(batch["frame"].numpy())}
    assert sorted(rows) == [1, 3, 4]
    has_flow = {f: bool(batch["has_flow"][i]) for f, i in rows.items()}
    assert has_flow == {1: True, 3: False, 4: False}   # 3 -> 5 absent, 4 -> 6 rejected
    assert int(batch["flow_to"][rows[1]]) == 3
    flow = batch["flow"][rows[1]].numpy()
    np.testing.assert_allclose(flow[INSIDE, INSIDE].mean(axis=(0, 1)), [SHIFT, 0], atol=0.25)
    assert not batch["flow"][rows[4]].numpy().any()


def test_grey_face_refuses_what_is_not_an_aligned_face():
    with pytest.raises(ValueError, match="not an aligned 200 x 200 face"):
        grey_face(cv2.imencode(".jpg", np.zeros((100, 100), np.uint8))[1].tobytes())
