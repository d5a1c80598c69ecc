"""The model card written next to the SavedModel (assets.extra/model_card.md) and its JSON twin.

model_card.md is for people; jaa_net.json carries the same facts for clients (AU order,
threshold, input and output layout, metrics).
"""
from __future__ import annotations

from components.import_release.component import release_provenance
from schemas.example import ALIGNED_SIZE
from schemas.face import NUM_LANDMARKS, au_name

DATA_DESCRIPTIONS = {
    "bp4d": ("BP4D-Spontaneous (41 young adults, F001-F023 / M001-M018, spontaneous expressions "
             "elicited in the lab, frontal video; 12 AUs coded by FACS experts)"),
    "disfa": ("DISFA (27 adults SN001-SN032, spontaneous reactions to video clips, left camera; "
              "8 AUs, positive = intensity >= 2); fine-tuned from a BP4D model as in the paper"),
    "synthetic": ("the built-in synthetic dataset (drawn faces with known landmarks and AUs, in "
                  "BP4D's layout and AU set): for testing the pipeline only"),
}


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def card_metadata(*, model, dataset: str, fold, version: int, model_name: str, threshold: float,
                  model_file: str, evaluation: dict | None, training: dict | None,
                  data: dict | None = None) -> dict:
    """The machine-readable facts (assets.extra/jaa_net.json)."""
    config = model.config
    names = [au_name(a) for a in config.aus]
    meta = {
        "model_name": model_name,
        "version": version,
        "dataset": dataset,
        "fold": fold,
        "source_model": model_file,
        "aus": names,
        "threshold": threshold,
        "inputs": {
            "serving_default": {"images": f"uint8 [batch, {ALIGNED_SIZE}, {ALIGNED_SIZE}, 3], aligned RGB faces"},
            "examples": {"examples": "string [batch], serialized tf.Example with a JPEG 'image' feature "
                                     f"of an aligned {ALIGNED_SIZE} x {ALIGNED_SIZE} face"},
            "raw_images": {"images": "uint8 [batch, height, width, 3], raw RGB frames",
                           "landmarks": f"float32 [batch, {2 * NUM_LANDMARKS}], the face's 49 "
                                        "points in raw-frame pixels (outputs' landmarks in "
                                        "raw-frame pixels too)"},
        },
        "outputs": {
            "au_probability": f"float32 [batch, {len(names)}], P(present), in the order of 'aus'",
            "au_present": f"int32 [batch, {len(names)}], 1 where au_probability >= threshold",
            "landmarks": f"float32 [batch, {2 * config.num_landmarks}], x0, y0, x1, y1, ... in pixels of "
                         f"the {ALIGNED_SIZE} x {ALIGNED_SIZE} aligned face",
        },
        "network": config.to_dict(),
        "training": training or {},
        "training_split": data or {},
    }
    provenance = release_provenance(training or {})
    if provenance:
        meta["provenance"] = provenance
    if evaluation:
        fold_entry = evaluation.get("folds", {}).get(str(fold)) if fold is not None else None
        meta["metrics"] = {
            "this_fold": _metric_subset(fold_entry) if fold_entry else None,
            "mean_over_folds": _metric_subset(evaluation.get("mean")),
            "folds_evaluated": (evaluation.get("mean") or {}).get("folds"),
        }
    return meta


def _metric_subset(entry: dict | None) -> dict | None:
    if not entry:
        return None
    return {"f1": {n: v["f1"] for n, v in entry["au"].items()},
            "accuracy": {n: v["accuracy"] for n, v in entry["au"].items()},
            "mean_f1": entry["mean_f1"], "mean_accuracy": entry["mean_accuracy"],
            "landmark_mean_error": entry["landmark_mean_error"],
            "landmark_failure_rate": entry["landmark_failure_rate"]}


def render_card(meta: dict) -> str:
    names = meta["aus"]
    net = meta["network"]
    dataset = meta["dataset"]
    fold = meta["fold"]
    lines = [
        f"# Model card: {meta['model_name']} version {meta['version']}",
        "",
        "JAA-Net (Shao et al., *Deep Adaptive Attention for Joint Facial Action Unit Detection and "
        "Face Alignment*, ECCV 2018) in Keras 3 / TensorFlow: detects the occurrence of facial "
        "action units (AUs) and locates 49 facial landmarks in one pass.",
        "",
        "## Model",
        "",
        f"- Source: `{meta['source_model']}` (dataset {dataset}"
        + (f", fold {fold}: trained on the two other subject-exclusive parts" if fold is not None else "")
        + ")",
        f"- Network: crop {net['crop_size']}, width unit {net['width_unit']}, hidden units "
        f"{net['hidden_units']}, region layer {net['region_layer']}, attention refinement "
        f"{'on' if net['attention_refinement'] else 'off'}, {net['initial_attention']} initial attention, "
        f"local AU branches merged by {net['local_merge']}, "
        f"{net.get('feature_stack', 'paper')} feature stacks",
        f"- AUs (output order): {', '.join(names)}",
        *([f"- Trained with RTATL's auxiliary tasks ({', '.join(net['auxiliary'])}) on "
           "unlabelled and training frames; their heads served training only and are not in "
           "this SavedModel"] if net.get("auxiliary") else []),
        f"- Decision threshold: an AU is present when its probability >= {meta['threshold']}",
    ]
    training = meta.get("training") or {}
    provenance = meta.get("provenance")
    if provenance:
        lines.append(
            f"- Weights: imported from {provenance['source']}, run folder "
            f"`{provenance['release_dir']}`, epoch {provenance['epoch']} (its six module files, "
            "sha256 in jaa_net.json); trained by the authors, not by this pipeline")
    elif training:
        shown = ", ".join(f"{k} {v}" for k, v in sorted(training.items())
                          if isinstance(v, (int, float, str, bool)) and v is not None)
        if shown:
            lines.append(f"- Training parameters: {shown}")
    lines += [
        "",
        "## Inputs and outputs",
        "",
        f"- `serving_default`: `images`, uint8 [batch, {ALIGNED_SIZE}, {ALIGNED_SIZE}, 3] RGB faces "
        "aligned like the training data (similarity transform that levels the eye centres and "
        "scales the face to the 200 x 200 frame, as the preprocess stage does). The centre crop, "
        "resizing and pixel scaling happen inside the graph.",
        "- `examples`: `examples`, string [batch] serialized `tf.Example`s with the schema's JPEG "
        "`image` feature (other features are ignored, labels are not needed).",
        "- `raw_images`: `images`, uint8 [batch, height, width, 3] raw RGB frames, and `landmarks`, "
        f"float32 [batch, {2 * NUM_LANDMARKS}], the face's 49 points in raw-frame pixels; the "
        "alignment happens inside the graph and `landmarks` come back in raw-frame pixels. "
        "`python -m pipeline.analyze` finds the faces and landmarks with dlib's 68-point "
        "predictor, trained on iBUG 300-W, whose terms exclude commercial use.",
        f"- Outputs: `au_probability` float32 [batch, {len(names)}]; `au_present` int32 (1 / 0); "
        f"`landmarks` float32 [batch, {2 * NUM_LANDMARKS}] as x0, y0, x1, y1, ... in pixels of the "
        "aligned face (49-point scheme without the jaw).",
        "",
        "## Data",
        "",
        f"- {DATA_DESCRIPTIONS.get(dataset, dataset)}.",
    ]
    split = meta.get("training_split") or {}
    if split.get("train_parts"):
        subjects = split.get("train_subjects") or []
        lines.append(
            f"- Training split: parts {', '.join(str(p) for p in split['train_parts'])}"
            + (f", {split['train_examples']} frames" if split.get("train_examples") is not None else "")
            + (f", {len(subjects)} subjects ({' '.join(subjects)})" if subjects else "")
            + (f"; held-out test part {split['test_part']}" if split.get("test_part") is not None else "")
            + ".")
    metrics = meta.get("metrics")
    lines += ["", "## Evaluation", ""]
    if metrics and (metrics.get("this_fold") or metrics.get("mean_over_folds")):
        lines += ["Frame-based F1 and accuracy per AU on held-out subjects (percent); landmark error "
                  "normalised by the inter-ocular distance, failure = error above 10%.", ""]
        columns = [(f"fold {fold} (this model)", metrics.get("this_fold")),
                   (f"mean over folds {metrics.get('folds_evaluated')}", metrics.get("mean_over_folds"))]
        columns = [(c, m) for c, m in columns if m]
        lines.append("| AU | " + " | ".join(f"F1 {c}" for c, _ in columns) + " | "
                     + " | ".join(f"Acc. {c}" for c, _ in columns) + " |")
        lines.append("|---|" + "---:|" * (2 * len(columns)))
        for n in names:
            lines.append(f"| {n} | " + " | ".join(_pct(m["f1"].get(n)) for _, m in columns) + " | "
                         + " | ".join(_pct(m["accuracy"].get(n)) for _, m in columns) + " |")
        lines.append("| **Avg** | " + " | ".join(_pct(m["mean_f1"]) for _, m in columns) + " | "
                     + " | ".join(_pct(m["mean_accuracy"]) for _, m in columns) + " |")
        lines += ["", "| Landmarks | " + " | ".join(c for c, _ in columns) + " |",
                  "|---|" + "---:|" * len(columns),
                  "| Mean error | " + " | ".join(_pct(m["landmark_mean_error"]) for _, m in columns) + " |",
                  "| Failure rate | " + " | ".join(_pct(m["landmark_failure_rate"]) for _, m in columns) + " |"]
    else:
        lines.append("No evaluation was available when this version was exported (run the evaluate "
                     "stage before export to have its metrics here).")
    lines += [
        "",
        "## Intended use",
        "",
        "- Research on facial action units: measuring AU occurrence in frontal, well-lit face video "
        "of adults, on faces aligned the way the training data was aligned.",
        "- Face alignment as a by-product (49 landmarks in the aligned frame).",
        "",
        "## Limits",
        "",
        "- AU occurrence is not emotion: do not read feelings, intent, honesty or personality from "
        "the outputs, and do not use it to make decisions about people.",
        "- Trained on a few dozen adults recorded in a lab; accuracy on other ages, skin tones "
        "under-represented in the data, head poses beyond near-frontal, occlusions (glasses, hands, "
        "masks), low light or compressed web video has not been measured.",
        "- Input must be aligned like the training faces; an unaligned or differently scaled "
        "crop gives unreliable outputs without any error.",
        "- Per-AU quality varies widely (see the table); rare AUs have low F1. The 0.5 threshold "
        "was not tuned per AU.",
        "- BP4D and DISFA are licensed for non-commercial research; models trained on them "
        "may carry the same restriction.",
    ]
    if dataset == "synthetic":
        lines.append("- This version was trained on synthetic drawings: it is a pipeline check and "
                     "means nothing on real faces.")
    return "\n".join(lines) + "\n"
