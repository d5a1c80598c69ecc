"""The Evaluate stage: metrics per fold and over folds, report, figure, CSV, caching, bad input."""
import csv
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from components.base import ArtifactMismatchError, UserError, write_completion_record
from components.evaluate import report
from components.evaluate.component import run_evaluate
from components.evaluate.executor import figure_name, predictions_name
from components.train.input_pipeline import part_files
from schemas.example import parse_examples
from schemas.face import AU_SETS, au_names
from tests._tiny_records import train_artifact
from tests.conftest import TINY_PER_PART

AUS = AU_SETS["bp4d"]
NAMES = au_names("bp4d")


@pytest.fixture(scope="module")
def setup(tiny_artifacts):
    out = tiny_artifacts["root"] / "eval" / "synthetic"
    result = run_evaluate(examples=tiny_artifacts["examples"], models=tiny_artifacts["models"],
                          output=out, dataset="synthetic", batch_size=5, figure_samples=2, log=None)
    return {**tiny_artifacts, "out": out, "result": result}


def _records(examples, part):
    """The true labels and aligned landmarks of a part, read straight through the schema."""
    serialized = [r.numpy() for r in tf.data.TFRecordDataset(part_files(examples, [part]), "GZIP")]
    parsed = parse_examples(tf.constant(serialized), len(AUS))
    return {k: v.numpy() for k, v in parsed.items()}


def test_outputs_and_completion(setup):
    out, result = setup["out"], setup["result"]
    assert result.status == "ran"
    for name in ("metrics.json", "report.md", "_COMPLETE.json", figure_name(1), figure_name(2),
                 predictions_name(1), predictions_name(2)):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "synthetic" and metrics["aus"] == NAMES
    assert sorted(metrics["folds"]) == ["1", "2"]
    assert metrics["paper"] is None  # synthetic data has no paper reference
    assert result.summary["frames"] == 2 * TINY_PER_PART   # the stray file in part1 is not read


def test_fold_metrics_match_an_independent_computation_from_the_csv(setup):
    """Per fold: F1 / accuracy from the CSV's 0/1 predictions and the records' labels (scikit-learn),
    and the landmark error from the CSV's aligned-frame landmarks, agree with metrics.json."""
    from sklearn.metrics import accuracy_score, f1_score
    metrics = json.loads((setup["out"] / "metrics.json").read_text())
    for fold in (1, 2):
        truth = _records(setup["examples"], fold)
        with open(setup["out"] / predictions_name(fold)) as f:
            rows = list(csv.DictReader(f))
        assert [int(r["frame"]) for r in rows] == truth["frame"].tolist()
        entry = metrics["folds"][str(fold)]
        assert entry["frames"] == TINY_PER_PART and entry["test_part"] == fold
        for i, name in enumerate(NAMES):
            labels = truth["au"][:, i]
            known = labels != -1
            predicted = np.array([int(r[name]) for r in rows])
            probability = np.array([float(r[f"{name}_probability"]) for r in rows], np.float32)
            np.testing.assert_array_equal(predicted, (probability >= 0.5).astype(int))
            assert entry["au"][name]["labelled"] == known.sum()
            assert entry["au"][name]["f1"] == pytest.approx(
                f1_score(labels[known], predicted[known], zero_division=0), abs=1e-9)
            assert entry["au"][name]["accuracy"] == pytest.approx(
                accuracy_score(labels[known], predicted[known]), abs=1e-9)
        assert entry["mean_f1"] == pytest.approx(np.mean([entry["au"][n]["f1"] for n in NAMES]))
        xs = np.array([[float(r[f"x_{j}"]) for j in range(49)] for r in rows])
        ys = np.array([[float(r[f"y_{j}"]) for j in range(49)] for r in rows])
        true = truth["landmarks"].reshape(-1, 49, 2)
        errors = np.hypot(xs - true[..., 0], ys - true[..., 1]).mean(1) / truth["inter_ocular"]
        # The CSV rounds landmarks to 0.01 px; the error is scale-free (crop or aligned frame).
        np.testing.assert_allclose(errors, [float(r["landmark_error"]) for r in rows], rtol=1e-3)
        assert entry["landmark_mean_error"] == pytest.approx(errors.mean(), rel=1e-3)
        assert entry["landmark_failure_rate"] == pytest.approx(np.mean(errors > 0.1))


def test_mean_over_folds(setup):
    metrics = json.loads((setup["out"] / "metrics.json").read_text())
    folds, mean = metrics["folds"], metrics["mean"]
    assert mean["folds"] == [1, 2]
    for key in ("mean_f1", "mean_accuracy", "landmark_mean_error", "landmark_failure_rate"):
        assert mean[key] == pytest.approx((folds["1"][key] + folds["2"][key]) / 2)
    assert mean["au"]["AU01"]["f1"] == pytest.approx(
        (folds["1"]["au"]["AU01"]["f1"] + folds["2"]["au"]["AU01"]["f1"]) / 2)


def test_report_is_laid_out_like_table_1(setup):
    text = (setup["out"] / "report.md").read_text()
    metrics = json.loads((setup["out"] / "metrics.json").read_text())
    assert "| AU | F1 this run (2-fold mean) | Acc. this run (2-fold mean) |" in text
    lines = [line for line in text.splitlines() if line.startswith("| AU")]
    assert len(lines) >= 2 * len(NAMES)  # the mean table and the per-fold table
    avg = f"| **Avg** | **{100 * metrics['mean']['mean_f1']:.1f}** |"
    assert avg in text
    assert "Mean error" in text and "Failure rate" in text
    assert f"![attention maps]({figure_name(1)})" in text


def test_report_quotes_the_paper_for_bp4d_and_disfa():
    for dataset, avg_f1, avg_acc in (("bp4d", "60.0", "78.4"), ("disfa", "56.0", "92.7")):
        aus = AU_SETS[dataset]
        scores = {"f1": np.full(len(aus), 0.5), "accuracy": np.full(len(aus), 0.75),
                  "mean_f1": 0.5, "mean_accuracy": 0.75}
        entry = report.fold_metrics(aus, scores, {"mean_error": 0.07, "failure_rate": 0.04},
                                    frames=10, labelled=np.full(len(aus), 10),
                                    positives=np.full(len(aus), 3),
                                    extra={"model": "m.keras", "test_part": 1})
        folds = {"1": entry}
        metrics = {"dataset": dataset, "aus": au_names(dataset), "threshold": 0.5,
                   "failure_threshold": 0.1, "folds": folds,
                   "mean": report.mean_over_folds(aus, folds),
                   "paper": report.paper_reference(dataset, aus)}
        text = report.render_report(metrics)
        assert "JAA-Net (paper)" in text
        assert f"| **Avg** | **50.0** | **{avg_f1}** | **75.0** | **{avg_acc}** |" in text
        assert "| AU01 | 50.0 | 47.2 | 75.0 | 74.7 |" in text or dataset == "disfa"
        assert "| AU26 | 50.0 | 58.4 | 75.0 | 93.2 |" in text or dataset == "bp4d"
        # Landmarks: the paper reports them for BP4D only (Table 4: 6.38, 3.27).
        assert ("| Mean error | 7.0 | 6.4 |" in text) == (dataset == "bp4d")
        assert ("| 4.0 | 3.3 |" in text) == (dataset == "bp4d")


def test_attention_figure_is_a_readable_png(setup):
    import matplotlib.image
    image = matplotlib.image.imread(setup["out"] / figure_name(1))
    # 2 samples x 2 rows (initial, refined), 12 AU columns + the face column + the colour bar.
    height, width = image.shape[:2]
    assert width > 1000 and height > 400 and width > 2 * height
    assert image[..., :3].std() > 0.05  # not blank


def test_rerun_is_skipped_and_force_reruns(setup):
    args = dict(examples=setup["examples"], models=setup["models"], output=setup["out"],
                dataset="synthetic", batch_size=5, figure_samples=2, log=None)
    assert run_evaluate(**args).status == "skipped"
    one = run_evaluate(**{**args, "models": {1: setup["models"][1]}, "figure_samples": 0},
                       predictions_csv=False)
    assert one.status == "ran" and one.summary["folds"] == [1]
    assert not (setup["out"] / figure_name(2)).exists()
    assert run_evaluate(**{**args, "models": {1: setup["models"][1]}, "figure_samples": 0},
                        predictions_csv=False, force=True).status == "ran"


# ------------------------------------------------------------------------------------------------
# Bad input: one clear error naming the file.


def test_model_trained_on_another_au_set(setup, tmp_path):
    examples = tmp_path / "examples" / "disfa"
    shutil.copytree(setup["examples"], examples)
    stats = json.loads((examples / "stats.json").read_text())
    stats["aus"] = list(AU_SETS["disfa"])
    (examples / "stats.json").write_text(json.dumps(stats))
    write_completion_record(examples, stage="preprocess", parameters={"dataset": "disfa"},
                            identity={"dataset": "disfa"})
    with pytest.raises(UserError) as error:
        run_evaluate(examples=examples, models={1: setup["models"][1]}, output=tmp_path / "eval",
                     dataset="disfa", log=None)
    message = str(error.value)
    assert str(setup["models"][1] / "model.keras") in message
    assert str(examples / "stats.json") in message and "AUs" in message


def test_missing_stats(setup, tmp_path):
    examples = tmp_path / "examples"
    shutil.copytree(setup["examples"], examples)
    (examples / "stats.json").unlink()
    write_completion_record(examples, stage="preprocess", parameters={"dataset": "synthetic"},
                            identity={"dataset": "synthetic"})
    with pytest.raises(UserError, match="stats.json"):
        run_evaluate(examples=examples, models={1: setup["models"][1]}, output=tmp_path / "eval",
                     dataset="synthetic", log=None)


@pytest.mark.parametrize("damage", ["missing", "truncated", "not_a_zip"])
def test_missing_or_corrupt_model_file(setup, tmp_path, damage):
    folder = train_artifact(tmp_path / "fold1", setup["model_file"], 1)
    model_file = folder / "model.keras"
    if damage == "missing":
        model_file.unlink()
    elif damage == "truncated":
        model_file.write_bytes(model_file.read_bytes()[:2000])
    else:
        model_file.write_text("this is not a model")
    with pytest.raises(UserError) as error:
        run_evaluate(examples=setup["examples"], models={1: folder}, output=tmp_path / "eval",
                     dataset="synthetic", log=None)
    assert str(model_file) in str(error.value)
    assert ("does not exist" if damage == "missing" else "could not be loaded") in str(error.value)


def test_output_folder_of_another_dataset(setup, tmp_path):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    write_completion_record(out, stage="evaluate", parameters={"dataset": "bp4d"},
                            identity={"dataset": "bp4d"})
    with pytest.raises(ArtifactMismatchError) as error:
        run_evaluate(examples=setup["examples"], models={1: setup["models"][1]}, output=out,
                     dataset="synthetic", log=None)
    assert str(out) in str(error.value) and "bp4d" in str(error.value)


def test_a_corrupt_record_file_is_named(setup, tmp_path):
    examples = tmp_path / "examples"
    shutil.copytree(setup["examples"], examples)
    damaged = examples / "part1" / "data-00000-of-00001.tfrecord.gz"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF                      # same size: only the checksum tells
    damaged.write_bytes(bytes(data))
    with pytest.raises(UserError, match="differs from .*manifest.json") as error:
        run_evaluate(examples=examples, models={1: setup["models"][1]}, output=tmp_path / "eval",
                     dataset="synthetic", log=None)
    assert str(damaged) in str(error.value)


def test_model_of_another_fold(setup, tmp_path):
    with pytest.raises(UserError, match="fold 2") as error:
        run_evaluate(examples=setup["examples"], models={1: setup["models"][2]},
                     output=tmp_path / "eval", dataset="synthetic", log=None)
    assert str(setup["models"][2]) in str(error.value)


def test_a_model_with_auxiliary_heads_gets_their_figures_and_says_how_it_trained(setup,
                                                                                 tmp_path):
    """Report: how each fold's model was trained (auxiliary tasks); figures of the masked,
    inpainted and true faces and of the target and predicted flow for a model with heads."""
    import jaa_keras
    from matplotlib.image import imread
    from tests._tiny_records import write_tiny_dataset
    from tests.conftest import TINY_NETWORK
    assert "trained without auxiliary tasks" in (setup["out"] / "report.md").read_text()
    examples = write_tiny_dataset(tmp_path / "examples", per_part=6, flow=True)
    model = jaa_keras.build_jaanet("bp4d", **TINY_NETWORK, auxiliary=("inpainting", "flow"))
    model.save(tmp_path / "heads.keras")
    folder = train_artifact(tmp_path / "fold1", tmp_path / "heads.keras", 1)
    out = tmp_path / "eval"
    run_evaluate(examples=examples, models={1: folder}, output=out, dataset="synthetic",
                 batch_size=5, figure_samples=3, log=None)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["folds"]["1"]["auxiliary"] == ["inpainting", "flow"]
    assert {"inpainting_fold1.png", "flow_fold1.png"} <= set(metrics["figures"])
    for name in ("inpainting_fold1.png", "flow_fold1.png"):
        image = imread(out / name)
        assert image.shape[0] > 300 and image.std() > 0.05, name   # three rows of faces
    text = (out / "report.md").read_text()
    assert "trained with the auxiliary tasks inpainting and flow" in text
    assert "![RoI inpainting](inpainting_fold1.png)" in text
    assert "![optical flow](flow_fold1.png)" in text
