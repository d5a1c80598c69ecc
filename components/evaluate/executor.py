"""The Evaluate stage's work: run each fold's model on its held-out part and score it.

Per fold k: the model in model_fold{k} runs on part k through the input pipeline's evaluation
path (centre crop, pixels in [-1, 1]: components.train.input_pipeline.make_dataset); the scores
come from jaa_keras.metrics (frame-based per-AU F1 and accuracy with unknown labels left out;
landmark error normalised by the inter-ocular distance, failure rate). Then the mean over the
folds evaluated, metrics.json, report.md, an attention figure per fold and optionally the
per-frame predictions as CSV.
"""
from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import numpy as np

from components.base import UserError, write_json_atomic
from components.evaluate import report
from components.evaluate.component import FOLDS
from components.evaluate.figures import to_uint8
from components.evaluate.model_io import check_au_set, data_aus, load_model, model_path
from pipeline.manifest import corrupt_record_error
from schemas.face import au_name

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"


def figure_name(fold: int) -> str:
    return f"attention_fold{fold}.png"


def predictions_name(fold: int) -> str:
    return f"predictions_fold{fold}.csv"


def run_executor(inputs: dict, outputs: dict, parameters: dict) -> dict:
    examples = inputs["examples"]
    out_dir = outputs["evaluation"].path
    dataset = parameters["dataset"]
    folds = {k: inputs[f"model_fold{k}"] for k in FOLDS if inputs.get(f"model_fold{k}") is not None}
    if not folds:
        raise UserError("evaluate: no model to evaluate (train at least one fold first)")
    aus, aus_source = data_aus(examples.path)

    entries, figures, csv_files = {}, [], []
    for k, model_artifact in folds.items():
        t0 = time.perf_counter()
        entry, samples, rows, auxiliary = evaluate_fold(k, model_artifact, examples.path, aus,
                                                        parameters, out_dir)
        figures += auxiliary
        if samples is not None:
            names = [au_name(a) for a in aus]
            from components.evaluate.figures import attention_figure
            attention_figure(out_dir / figure_name(k), samples["faces"], samples["initial"],
                             samples["refined"], names,
                             predicted_landmarks=samples["predicted"], true_landmarks=samples["true"],
                             captions=samples["captions"],
                             title=f"{dataset} fold {k}: predefined (initial) and refined attention maps")
            figures.append(figure_name(k))
        if rows is not None:
            _write_predictions(out_dir / predictions_name(k), aus, rows)
            csv_files.append(predictions_name(k))
        entry["seconds"] = round(time.perf_counter() - t0, 2)
        entries[str(k)] = entry

    metrics = {
        "dataset": dataset,
        "aus": [au_name(a) for a in aus],
        "threshold": parameters["threshold"],
        "failure_threshold": parameters["failure_threshold"],
        "examples": str(examples.path),
        "au_set_from": str(aus_source),
        "folds": entries,
        "mean": report.mean_over_folds(aus, entries),
        "paper": report.paper_reference(dataset, aus),
        "figures": figures,
        "predictions": csv_files,
    }
    write_json_atomic(out_dir / METRICS_FILE, metrics)
    (out_dir / REPORT_FILE).write_text(report.render_report(metrics, figures, csv_files))
    mean = metrics["mean"]
    return {"folds": mean["folds"], "frames": mean["frames"], "mean_f1": mean["mean_f1"],
            "mean_accuracy": mean["mean_accuracy"], "landmark_mean_error": mean["landmark_mean_error"],
            "landmark_failure_rate": mean["landmark_failure_rate"]}


def evaluate_fold(fold: int, model_artifact, examples_dir, aus, parameters, out_dir):
    """One fold: (metrics entry, figure samples or None, prediction rows or None, the figures
    of the model's auxiliary tasks written to `out_dir`)."""
    import tensorflow as tf

    import keras

    from components.train.input_pipeline import (crop_landmarks_to_aligned, file_record_counts,
                                                 make_dataset, part_files)
    from jaa_keras.metrics import au_detection_scores, landmark_errors, landmark_summary

    model_dir = model_artifact.path
    trained_fold = model_artifact.parameters.get("fold")
    if trained_fold is not None and int(trained_fold) != fold:
        raise UserError(f"{model_dir} holds the model of fold {trained_fold} (per "
                        f"{model_artifact.record_path}); fold {fold} is tested on part {fold}, which "
                        f"that model trained on; pass models/<dataset>/fold{fold}")
    model = load_model(model_dir)
    check_au_set(model, model_dir, examples_dir)
    crop = model.config.crop_size
    files = part_files(examples_dir, [fold])
    dataset = make_dataset(files, len(aus), crop, training=False,
                           batch_size=parameters["batch_size"], keep_metadata=True)
    infer = tf.function(lambda x: model(x, training=False),  # one trace for every batch size
                        input_signature=[tf.TensorSpec([None, crop, crop, 3], tf.float32)])

    picker = _SamplePicker(parameters["figure_samples"])
    probabilities, predicted, labels, true, inter_ocular, meta = [], [], [], [], [], []
    # Keras' own progress bar (as fit shows it), in a terminal only: a log file gets no bar.
    progress = keras.utils.Progbar(sum(file_record_counts(files, examples_dir)), unit_name="face",
                                   verbose=1 if sys.stdout.isatty() else 0)
    for images, target in _batches(dataset, examples_dir, files):
        output = {name: value.numpy() for name, value in infer(images).items()}
        progress.add(len(images))
        batch_labels = target["au"].numpy().astype(np.int64)
        probabilities.append(output["au_probability"])
        predicted.append(output["landmarks"])
        labels.append(batch_labels)
        true.append(target["landmarks"].numpy())
        inter_ocular.append(target["inter_ocular"].numpy())
        subjects = [s.decode() for s in target["subject"].numpy()]
        tasks = [t.decode() for t in target["task"].numpy()]
        frames = target["frame"].numpy().tolist()
        meta.extend(zip(subjects, tasks, frames))
        picker.offer(images.numpy(), output, target["landmarks"].numpy(), batch_labels,
                     [f"{s} {t} #{f}" for s, t, f in zip(subjects, tasks, frames)], subjects)
    if not labels:
        raise UserError(f"part {fold} of {examples_dir} holds no examples")
    probabilities, predicted = np.concatenate(probabilities), np.concatenate(predicted)
    labels, true, inter_ocular = np.concatenate(labels), np.concatenate(true), np.concatenate(inter_ocular)

    scores = au_detection_scores(labels, probabilities, parameters["threshold"])
    errors = landmark_errors(predicted, true, inter_ocular)
    entry = report.fold_metrics(
        aus, scores, landmark_summary(errors, parameters["failure_threshold"]),
        frames=len(labels), labelled=(labels != -1).sum(0), positives=(labels == 1).sum(0),
        extra={"model": str(model_path(model_dir)), "test_part": fold,
               "trained_on_dataset": model_artifact.record().get("identity", {}).get("dataset"),
               "crop_size": crop, "auxiliary": list(model.config.auxiliary),
               "label_fraction": model_artifact.parameters.get("label_fraction", 1.0)})

    rows = None
    if parameters["predictions_csv"]:
        aligned = np.asarray(crop_landmarks_to_aligned(predicted, crop))
        rows = {"meta": meta, "probabilities": probabilities,
                "present": (probabilities >= parameters["threshold"]).astype(np.int64),
                "landmarks": aligned, "errors": errors}
    from components.evaluate.auxiliary import auxiliary_figures
    auxiliary = auxiliary_figures(model, files, out_dir, fold, parameters["figure_samples"],
                                  f"{parameters['dataset']} fold {fold}")
    return entry, picker.samples(), rows, auxiliary


def _batches(dataset, examples_dir, files):
    """The dataset's batches; a record damaged after part_files checked it is named (a UserError)
    instead of TensorFlow's DataLossError, which names no file."""
    import tensorflow as tf
    batches = iter(dataset)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except tf.errors.DataLossError as error:
            raise corrupt_record_error(examples_dir, files, error) from None
        yield batch


class _SamplePicker:
    """Keeps a few faces for the attention figure while the fold streams by.

    Prefers different subjects (the first `n` seen), and within a subject the frame with the most
    AUs present; frames of the same subjects fill in when the part has fewer subjects.
    """

    def __init__(self, n: int):
        self.n = max(0, int(n))
        self.by_subject: dict[str, tuple] = {}
        self.extra: list[tuple] = []

    def offer(self, images, output, true_landmarks, labels, captions, subjects):
        if not self.n:
            return
        for i, subject in enumerate(subjects):
            score = int((labels[i] == 1).sum())
            keep = lambda: (score, captions[i], to_uint8(images[i]),  # noqa: E731
                            output["attention_initial"][i], output["attention"][i],
                            output["landmarks"][i], true_landmarks[i])
            best = self.by_subject.get(subject)
            if best is None and len(self.by_subject) < self.n:
                self.by_subject[subject] = keep()
                continue
            if best is not None and score > best[0]:
                candidate, self.by_subject[subject] = best, keep()
            elif len(self.extra) < self.n or score > self.extra[-1][0]:
                candidate = keep()
            else:
                continue
            self.extra = sorted(self.extra + [candidate], key=lambda e: -e[0])[:self.n]

    def samples(self) -> dict | None:
        chosen = list(self.by_subject.values())
        chosen += self.extra[:self.n - len(chosen)]
        if not chosen:
            return None
        _, captions, faces, initial, refined, predicted, true = zip(*chosen)
        return {"captions": list(captions), "faces": np.stack(faces), "initial": np.stack(initial),
                "refined": np.stack(refined), "predicted": np.stack(predicted), "true": np.stack(true)}


def _write_predictions(path: Path, aus, rows: dict) -> None:
    """subject, task, frame, AU01.. (0/1 at the threshold), AU01_probability.., x_0.., y_0.. (in
    the aligned 200 x 200 frame, like the serving signature), landmark_error (normalised)."""
    names = [au_name(a) for a in aus]
    landmarks = rows["landmarks"]
    points = landmarks.shape[1] // 2
    header = (["subject", "task", "frame"] + names + [f"{n}_probability" for n in names]
              + [f"x_{i}" for i in range(points)] + [f"y_{i}" for i in range(points)]
              + ["landmark_error"])
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i, (subject, task, frame) in enumerate(rows["meta"]):
            writer.writerow([subject, task, frame] + rows["present"][i].tolist()
                            + [f"{p:.9g}" for p in rows["probabilities"][i]]
                            + [f"{v:.2f}" for v in landmarks[i, 0::2]]
                            + [f"{v:.2f}" for v in landmarks[i, 1::2]]
                            + [f"{rows['errors'][i]:.5f}"])
