"""The Export stage's work: SavedModel with both signatures, warm-up requests, model card, a check.

Writes into the (staging) version folder it is given:
  saved_model.pb, variables/, fingerprint.pb    the SavedModel (components/export/signatures.py)
  assets.extra/tf_serving_warmup_requests       PredictionLog records (warmup.py)
  assets.extra/model_card.md, jaa_net.json      the model card and its machine-readable facts
Then, unless verify is off, reloads the SavedModel with tf.saved_model.load and checks that both
signatures give the Keras model's outputs on a few faces.
"""
from __future__ import annotations

import json

import numpy as np

from components.base import UserError, read_json
from components.evaluate.model_io import check_au_set, load_model, model_path
from components.export import model_card
from components.export.signatures import (DEFAULT_SIGNATURE, EXAMPLES_SIGNATURE, RAW_SIGNATURE,
                                          write_saved_model)
from components.export.warmup import write_warmup_file

ASSETS_EXTRA = "assets.extra"
CARD_FILE = "model_card.md"
METADATA_FILE = "jaa_net.json"
VERIFY_TOLERANCE = {"au_probability": 1e-5, "landmarks": 1e-3}  # landmarks: 200-pixel frame


def run_executor(inputs: dict, outputs: dict, parameters: dict) -> dict:
    model_artifact = inputs["model"]
    out = outputs["saved_model"].path
    dataset = parameters["dataset"]
    version = parameters["version"]
    if version is None:
        raise UserError("export: no version number; run the stage through "
                        "components.export.component.run_export")

    model = load_model(model_artifact.path)
    examples = inputs.get("examples")
    check_au_set(model, model_artifact.path, examples.path if examples is not None else None,
                 dataset=dataset)

    evaluation = None
    if inputs.get("evaluation") is not None:
        metrics_file = inputs["evaluation"].path / "metrics.json"
        evaluation = read_json(metrics_file, "evaluation metrics")
        if evaluation.get("dataset") != dataset:
            raise UserError(f"{metrics_file} evaluates dataset {evaluation.get('dataset')!r}, "
                            f"not {dataset!r}; pass the eval folder of {dataset!r}")

    threshold = parameters["threshold"]
    write_saved_model(model, out, threshold)
    assets = out / ASSETS_EXTRA
    write_warmup_file(assets, parameters["model_name"], parameters["warmup_batch_sizes"])

    training = model_artifact.parameters
    fold = training.get("fold")
    meta = model_card.card_metadata(
        model=model, dataset=dataset, fold=fold, version=version,
        model_name=parameters["model_name"], threshold=threshold,
        model_file=str(model_path(model_artifact.path)), evaluation=evaluation,
        training={k: v for k, v in training.items() if k not in ("dataset",)},
        data=_training_split(examples.path if examples is not None else None, fold))
    (assets / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    (assets / CARD_FILE).write_text(model_card.render_card(meta))

    summary = {"version": version, "model_name": parameters["model_name"], "fold": fold,
               "aus": meta["aus"], "threshold": threshold,
               "signatures": [DEFAULT_SIGNATURE, EXAMPLES_SIGNATURE, RAW_SIGNATURE]}
    if parameters["verify"]:
        summary["verify_max_abs_diff"] = verify_export(model, out, threshold)
    return summary


def _training_split(examples_dir, fold) -> dict | None:
    """The fold's training split as the preprocess stage's stats.json / manifest.json describe it."""
    if examples_dir is None or fold is None:
        return None
    split = {}
    stats_file, manifest_file = examples_dir / "stats.json", examples_dir / "manifest.json"
    if stats_file.is_file():
        stats = read_json(stats_file, "dataset stats")
        found = (stats.get("splits") or {}).get(f"fold{fold}") or {}
        split.update({k: found[k] for k in ("train_parts", "test_part", "train_examples") if k in found})
    if manifest_file.is_file() and split.get("train_parts"):
        subjects = read_json(manifest_file, "dataset manifest").get("subjects") or {}
        split["train_subjects"] = sorted(s for p in split["train_parts"] for s in subjects.get(str(p), []))
    return split or None


def verify_export(model, path, threshold: float = 0.5) -> dict:
    """Reload `path` and compare both signatures with the Keras model on a few faces."""
    import tensorflow as tf

    from components.export.signatures import make_serving_functions
    from components.export.warmup import grey_faces

    rng = np.random.default_rng(0)
    faces = np.concatenate([grey_faces(1), rng.integers(0, 256, (2,) + grey_faces(1).shape[1:],
                                                       dtype=np.uint8)])
    serve_images, serve_examples = make_serving_functions(model, threshold)
    expected = {k: v.numpy() for k, v in serve_images(tf.constant(faces)).items()}
    loaded = tf.saved_model.load(str(path))
    jpegs = [tf.io.encode_jpeg(f, quality=100).numpy() for f in faces]
    examples = [tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[j]))})).SerializeToString()
        for j in jpegs]
    expected_examples = {k: v.numpy() for k, v in serve_examples(tf.constant(examples)).items()}
    got = {DEFAULT_SIGNATURE: loaded.signatures[DEFAULT_SIGNATURE](images=tf.constant(faces)),
           EXAMPLES_SIGNATURE: loaded.signatures[EXAMPLES_SIGNATURE](examples=tf.constant(examples))}
    differences = {}
    for signature, reference in ((DEFAULT_SIGNATURE, expected), (EXAMPLES_SIGNATURE, expected_examples)):
        for name, tolerance in VERIFY_TOLERANCE.items():
            diff = float(np.max(np.abs(got[signature][name].numpy() - reference[name])))
            differences[f"{signature}/{name}"] = diff
            if not diff <= tolerance:
                raise RuntimeError(f"export check failed: {signature} output {name} differs from "
                                   f"the Keras model by {diff} (> {tolerance}) in {path}")
    return differences
