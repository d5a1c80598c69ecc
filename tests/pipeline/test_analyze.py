"""From photos and videos to AUs: the raw_images serving signature and `python -m pipeline.analyze`
on scikit-image's astronaut photo (a real face), a photo without a face and a video made from the
photo, with a tiny exported model."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage import data

import jaa_keras

from components.export.signatures import align_in_graph
from pipeline import analyze
from pipeline.align import align_face, transform_points
from schemas.face import au_names
from tests._tiny_records import mean_face
from tests.conftest import TINY_NETWORK
from tests.pipeline.test_tracking import _moving_video

AUS = au_names("bp4d")
REPO = Path(__file__).resolve().parents[2]


def test_raw_images_signature_aligns_like_the_pipeline(exported):
    """Raw frames + raw-pixel landmarks through raw_images give what pipeline.align followed by
    serving_default gives, with the landmarks back in raw-frame pixels; any frame size."""
    loaded = exported["loaded"]
    rng = np.random.default_rng(0)
    photo = data.astronaut()
    # Three faces per request: the mean face's landmarks placed on the photo under a rotation,
    # scale and shift (the pixels are the photo's; alignment only needs consistent landmarks).
    for size, angle in (((512, 512), 15), ((330, 270), -30)):
        frames, points = [], []
        for scale in (1.0, 0.7, 1.3):
            matrix = cv2.getRotationMatrix2D((100, 100), angle, scale)
            matrix[:, 2] += rng.uniform(20, 60, 2)
            frames.append(cv2.resize(photo, size))
            points.append(transform_points(matrix, mean_face()).astype(np.float32))
        frames, points = np.stack(frames), np.stack(points)
        aligned = [align_face(f, p) for f, p in zip(frames, points)]
        in_graph, _ = align_in_graph(tf.constant(frames), tf.constant(points.reshape(3, 98)))
        grey_levels = np.abs(in_graph.numpy().astype(int) - np.stack([a.image for a in aligned]))
        assert grey_levels.mean() < 1

        reference = loaded.signatures["serving_default"](
            images=tf.constant(np.stack([a.image for a in aligned])))
        got = loaded.signatures["raw_images"](images=tf.constant(frames),
                                              landmarks=tf.constant(points.reshape(3, 98)))
        np.testing.assert_allclose(got["au_probability"], reference["au_probability"], atol=1e-3)
        back = [transform_points(cv2.invertAffineTransform(a.matrix), p.reshape(49, 2))
                for a, p in zip(aligned, reference["landmarks"].numpy())]
        np.testing.assert_allclose(got["landmarks"].numpy().reshape(3, 49, 2), back, atol=0.05)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_analyze_photos_and_a_video(exported, tmp_path):
    """The command a user runs, in a fresh process, on paths with spaces: a folder of two photos
    (one without a face) and a video; --model given as the serving folder above the versions."""
    photo = data.astronaut()
    photos = tmp_path / "my photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "astronaut.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(photos / "coffee.jpg"), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    video, _ = _moving_video(photo)
    blank = np.full_like(video[0], 90)
    clip = tmp_path / "a clip (1).avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for frame in video + [blank] * 4:   # the face leaves; the detection at frame 16 notices
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / "out put"
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.analyze", "--input", str(photos), str(clip),
         "--model", str(exported["root"] / "serving"), "--output_dir", str(out),
         "--redetect_every", "5", "--precision", "float32", "--runner=DirectRunner"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["astronaut", "coffee", "a clip (1)"]
    assert "16 frames, 1 faces, 1 frames without a face" in lines[2]

    header = analyze.csv_header(AUS)
    astronaut = _rows(out / "astronaut.csv")
    assert list(astronaut[0]) == header and len(astronaut) == 1
    row = astronaut[0]
    assert row["success"] == "1" and row["face_id"] == "0" and float(row["confidence"]) > 0.5
    # The AU probabilities are the model's on the face aligned with the CSV's own landmarks.
    points = np.array([[float(row[f"x_{i}"]), float(row[f"y_{i}"])] for i in range(49)])
    face = align_face(photo, points)
    expected = exported["loaded"].signatures["serving_default"](images=tf.constant(face.image[None]))
    probability = [float(row[f"{au}_p"]) for au in AUS]
    np.testing.assert_allclose(probability, expected["au_probability"].numpy()[0], atol=2e-4)
    assert [int(row[f"{au}_c"]) for au in AUS] == [int(p >= 0.5) for p in probability]
    model_points = transform_points(cv2.invertAffineTransform(face.matrix),
                                    expected["landmarks"].numpy().reshape(49, 2))
    assert abs(float(row["model_x_13"]) - model_points[13, 0]) < 0.02

    coffee = _rows(out / "coffee.csv")
    assert len(coffee) == 1 and coffee[0]["success"] == "0" and coffee[0]["AU01_p"] == ""

    frames = _rows(out / "a clip (1).csv")
    assert [int(r["frame"]) for r in frames] == list(range(1, 17))
    np.testing.assert_allclose([float(r["timestamp"]) for r in frames], np.arange(16) / 10, atol=1e-3)
    assert {r["face_id"] for r in frames if r["success"] == "1"} == {"0"}
    assert [r["success"] for r in frames][-1] == "0"
    assert (out / "a clip (1).png").stat().st_size > 0 and not (out / "astronaut.png").exists()


def test_bfloat16_precision_stays_close_to_float32(tmp_path):
    """--precision bfloat16 (the default on CPUs with bfloat16 arithmetic) reaches the model: it
    says so, and the probabilities stay near float32's; where the CPU computes in bfloat16 they
    also differ from them, so the rewrite really ran. (Keras' initialisation: a tiny network's
    Caffe-initialised logits are so near 0 that both precisions give exactly 0.5.)"""
    model_file = tmp_path / "tiny.keras"
    keras.utils.set_random_seed(5)
    jaa_keras.build_jaanet("bp4d", **TINY_NETWORK, initialization="keras").save(model_file)
    photo = data.astronaut()
    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.analyze", "--input", str(image), "--model",
         str(model_file), "--output_dir", str(tmp_path / "out"), "--precision", "bfloat16"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "the model runs in bfloat16" in run.stderr
    row = _rows(tmp_path / "out" / "astronaut.csv")[0]
    points = np.array([[float(row[f"x_{i}"]), float(row[f"y_{i}"])] for i in range(49)])
    # float32 here, in this process (the rewrite, once on, holds for the whole process)
    serve = analyze.load_serving_function(
        analyze.ModelInfo(str(model_file), "keras", AUS, 0.5), "float32")
    expected = serve(align_face(photo, points).image[None])["au_probability"][0]
    difference = np.abs(np.array([float(row[f"{au}_p"]) for au in AUS]) - expected)
    assert difference.max() < 0.05
    if analyze.cpu_computes_bfloat16():   # beyond the rounding of the CSV's 4 decimals
        assert difference.max() > 6e-5


def test_precision_auto_follows_the_cpu(monkeypatch):
    """auto: bfloat16 only where the CPU computes in it (and no GPU), else float32."""
    for has_bfloat16, expected in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(analyze, "cpu_computes_bfloat16", lambda: has_bfloat16)
        assert analyze.model_precision("auto") == (expected if not tf.config.list_physical_devices(
            "GPU") else "float32")
    assert analyze.model_precision("float32") == "float32"
    with pytest.raises(analyze.UserError, match="--precision half"):
        analyze.model_precision("half")


def test_bad_input_gives_one_clear_error(tmp_path, capsys):
    model = str(tmp_path / "checked after the inputs")
    with pytest.raises(SystemExit, match="no such file or folder"):
        analyze.main(["--input", str(tmp_path / "missing.mp4"), "--model", model,
                      "--output_dir", str(tmp_path)])
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SystemExit, match="notes.txt: not an image or video"):
        analyze.main(["--input", str(tmp_path / "notes.txt"), "--model", model,
                      "--output_dir", str(tmp_path)])
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(SystemExit, match="broken.mp4: OpenCV cannot open"):
        analyze.main(["--input", str(tmp_path / "broken.mp4"), "--model", model,
                      "--output_dir", str(tmp_path)])
    (tmp_path / "empty").mkdir()
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((8, 8, 3), 128, np.uint8))
    with pytest.raises(SystemExit, match="--model .*empty: not a SavedModel"):
        analyze.main(["--input", str(tmp_path / "grey.png"), "--model", str(tmp_path / "empty"),
                      "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit):
        analyze.main(["--input", "x.png", "--model", model, "--output_dir", "o", "--frobnicate"])
    assert "unknown option(s) ['--frobnicate']" in capsys.readouterr().err


def test_inputs_expand_like_openface(tmp_path):
    """A folder of images: one unit per image, or one sequence with --sequence; globs; videos."""
    folder = tmp_path / "shots"
    folder.mkdir()
    for name in ("b.jpg", "a.png", "c.txt", "d.mp4"):
        (folder / name).write_bytes(b"")
    units = analyze.expand_inputs([str(folder)])
    assert [(u.name, u.kind) for u in units] == [("a", "image"), ("b", "image"), ("d", "video")]
    sequence = analyze.expand_inputs([str(folder)], sequence=True)
    assert [(u.name, u.kind, len(u.paths)) for u in sequence] == [("shots", "sequence", 2),
                                                                   ("d", "video", 1)]
    assert [u.name for u in analyze.expand_inputs([str(folder / "*.jpg")])] == ["b"]
    with pytest.raises(analyze.UserError, match="both write a.csv"):
        analyze.expand_inputs([str(folder / "a.png"), str(folder / "a.png")])
