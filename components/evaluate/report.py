"""metrics.json and report.md of the Evaluate stage: per fold, the mean over folds, the paper's figures.

Pure Python + NumPy (no TensorFlow). Values in metrics.json are fractions (0..1); report.md shows
them in percent with the % omitted, as the paper does.

report.md lays its AU table out like the paper's Table 1: one row per AU plus "Avg", F1-frame
columns then accuracy columns, one column per method (this run's 3-fold mean, and for BP4D / DISFA
the paper's JAA-Net as the reference). Per-fold figures and the landmark table (like the paper's
Table 4) follow.
"""
from __future__ import annotations

import math

import numpy as np

from schemas.face import au_name

# The paper's JAA-Net results (percent). BP4D: Table 1; DISFA: Table 2 (in the text extracted
# from the paper's PDF that table is garbled; its JAA-Net columns read
# F1 43.7 46.2 56.0 41.4 44.7 69.6 88.3 58.4 / 56.0 and accuracy 93.4 96.1 86.9 91.4 95.8 91.2 93.4
# 93.2 / 92.7, which agree with the averages in docs/evaluation.md). Landmarks: Table 4 (BP4D).
PAPER_RESULTS = {
    "bp4d": {
        "source": "Shao et al., ECCV 2018, Table 1 and Table 4",
        "f1": {1: 47.2, 2: 44.0, 4: 54.9, 6: 77.5, 7: 74.6, 10: 84.0, 12: 86.9, 14: 61.9, 15: 43.6,
               17: 60.3, 23: 42.7, 24: 41.9},
        "accuracy": {1: 74.7, 2: 80.8, 4: 80.4, 6: 78.9, 7: 71.0, 10: 80.2, 12: 85.4, 14: 64.8,
                     15: 83.1, 17: 73.5, 23: 82.3, 24: 85.4},
        "mean_f1": 60.0, "mean_accuracy": 78.4,
        "landmark_mean_error": 6.38, "landmark_failure_rate": 3.27,
    },
    "disfa": {
        "source": "Shao et al., ECCV 2018, Table 2",
        "f1": {1: 43.7, 2: 46.2, 4: 56.0, 6: 41.4, 9: 44.7, 12: 69.6, 25: 88.3, 26: 58.4},
        "accuracy": {1: 93.4, 2: 96.1, 4: 86.9, 6: 91.4, 9: 95.8, 12: 91.2, 25: 93.4, 26: 93.2},
        "mean_f1": 56.0, "mean_accuracy": 92.7,
    },
}
PAPER_NAME = "JAA-Net (paper)"


def _clean(value):
    """float for JSON; NaN becomes None (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def fold_metrics(aus, au_scores: dict, landmark: dict, *, frames: int, labelled: np.ndarray,
                 positives: np.ndarray, extra: dict | None = None) -> dict:
    """One fold's entry of metrics.json from jaa_keras.metrics' outputs.

    au_scores: au_detection_scores(...); landmark: landmark_summary(...);
    labelled / positives: per-AU counts of known labels and of positive labels.
    """
    per_au = {}
    for i, au in enumerate(aus):
        per_au[au_name(au)] = {"f1": _clean(au_scores["f1"][i]),
                               "accuracy": _clean(au_scores["accuracy"][i]),
                               "labelled": int(labelled[i]), "positives": int(positives[i])}
    entry = {"frames": int(frames), "au": per_au,
             "mean_f1": _clean(au_scores["mean_f1"]),
             "mean_accuracy": _clean(au_scores["mean_accuracy"]),
             "landmark_mean_error": _clean(landmark["mean_error"]),
             "landmark_failure_rate": _clean(landmark["failure_rate"])}
    entry.update(extra or {})
    return entry


def _nanmean(values):
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else None


def mean_over_folds(aus, folds: dict) -> dict:
    """The mean over the evaluated folds (each fold weighs the same, docs/evaluation.md).

    Per AU: the mean of that AU's per-fold score (folds where it had no known label left out);
    averages: the mean of the per-fold averages over AUs; landmarks: the mean of per-fold values.
    """
    names = [au_name(au) for au in aus]
    entries = list(folds.values())
    return {
        "folds": [int(k) for k in folds],
        "frames": int(sum(e["frames"] for e in entries)),
        "au": {n: {"f1": _nanmean([e["au"][n]["f1"] for e in entries]),
                   "accuracy": _nanmean([e["au"][n]["accuracy"] for e in entries])} for n in names},
        "mean_f1": _nanmean([e["mean_f1"] for e in entries]),
        "mean_accuracy": _nanmean([e["mean_accuracy"] for e in entries]),
        "landmark_mean_error": _nanmean([e["landmark_mean_error"] for e in entries]),
        "landmark_failure_rate": _nanmean([e["landmark_failure_rate"] for e in entries]),
    }


def paper_reference(dataset: str, aus) -> dict | None:
    """The paper's JAA-Net figures for this dataset (as fractions), or None (synthetic data)."""
    paper = PAPER_RESULTS.get(dataset)
    if paper is None or tuple(sorted(paper["f1"])) != tuple(sorted(aus)):
        return None
    pct = lambda v: None if v is None else v / 100.0  # noqa: E731
    return {
        "source": paper["source"],
        "au": {au_name(au): {"f1": pct(paper["f1"][au]), "accuracy": pct(paper["accuracy"][au])}
               for au in aus},
        "mean_f1": pct(paper["mean_f1"]), "mean_accuracy": pct(paper["mean_accuracy"]),
        "landmark_mean_error": pct(paper.get("landmark_mean_error")),
        "landmark_failure_rate": pct(paper.get("landmark_failure_rate")),
    }


# ---------------------------------------------------------------------------------------------
# report.md


def _pct(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _au_table(names: list[str], methods: list[tuple[str, dict]]) -> list[str]:
    """Rows = AUs + Avg; columns = F1 per method, then accuracy per method (the paper's Table 1)."""
    header = ["AU"] + [f"F1 {m}" for m, _ in methods] + [f"Acc. {m}" for m, _ in methods]
    rows = []
    for n in names:
        rows.append([n]
                    + [_pct(e["au"][n]["f1"]) for _, e in methods]
                    + [_pct(e["au"][n]["accuracy"]) for _, e in methods])
    rows.append(["**Avg**"] + [f"**{_pct(e['mean_f1'])}**" for _, e in methods]
                + [f"**{_pct(e['mean_accuracy'])}**" for _, e in methods])
    return _table(header, rows)


# The report's figure sections: (file name prefix, heading, what a row shows, alt text).
FIGURE_SECTIONS = (
    ("attention", "Attention maps (like the paper's Fig. 4)",
     "Per sample face: the predefined (initial) attention maps from the predicted landmarks, then "
     "the refined maps, one column per AU.", "attention maps"),
    ("inpainting", "RoI inpainting (auxiliary task)",
     "Per sample face: AU-centred squares masked, the network's recovery of them, the true face.",
     "RoI inpainting"),
    ("flow", "Single-image optical flow (auxiliary task)",
     "Per sample face: the target flow to a later frame (arrows), then target and prediction in "
     "the colour-wheel coding (hue: direction, saturation: length).", "optical flow"),
)


def _training_data(entry: dict) -> str:
    """How a fold's model was trained, as far as the auxiliary tasks go (docs/auxiliary-tasks.md)."""
    tasks = entry.get("auxiliary") or []
    said = (f"trained with the auxiliary task{'s' if len(tasks) > 1 else ''} "
            f"{' and '.join(tasks)}" if tasks else "trained without auxiliary tasks")
    fraction = entry.get("label_fraction")
    if fraction is not None and fraction < 1:
        said += f", on the AU codes of {_pct(fraction)} % of the training frames"
    return said


def render_report(metrics: dict, figures: list[str] | None = None,
                  predictions: list[str] | None = None) -> str:
    """report.md from the content of metrics.json."""
    dataset = metrics["dataset"]
    names = metrics["aus"]
    folds = metrics["folds"]
    mean = metrics["mean"]
    paper = metrics.get("paper")
    fold_list = ", ".join(str(k) for k in mean["folds"])
    out = [f"# JAA-Net evaluation: {dataset}", ""]
    out += [f"Subject-exclusive folds evaluated: {fold_list} (each fold's model tested on the part it "
            f"did not train on; {mean['frames']} test frames in all). AU present when "
            f"P >= {metrics['threshold']}; frames with an unknown label are left out of that AU. "
            "Values in percent.", ""]
    this_run = f"this run ({len(mean['folds'])}-fold mean)" if len(mean["folds"]) > 1 else \
        f"this run (fold {mean['folds'][0]})"
    methods = [(this_run, mean)]
    if paper:
        methods.append((PAPER_NAME, paper))
    out += ["## F1-frame and accuracy per AU (laid out like the paper's Table 1)", ""]
    out += _au_table(names, methods)
    if paper:
        out += ["", f"Reference: {paper['source']}."]
    if len(folds) > 1:
        out += ["", "## Per fold", ""]
        out += _au_table(names, [(f"fold {k}", folds[k]) for k in folds])
    out += ["", "## Face alignment (normalised by the inter-ocular distance, like the paper's Table 4)", ""]
    lm_methods = [(f"fold {k}", folds[k]) for k in folds]
    if len(folds) > 1:
        lm_methods.append((this_run, mean))
    if paper and paper.get("landmark_mean_error") is not None:
        lm_methods.append((PAPER_NAME, paper))
    rows = [["Mean error"] + [_pct(e["landmark_mean_error"]) for _, e in lm_methods],
            [f"Failure rate (error > {metrics['failure_threshold']})"]
            + [_pct(e["landmark_failure_rate"]) for _, e in lm_methods]]
    out += _table([""] + [m for m, _ in lm_methods], rows)
    out += ["", "## Models and data", ""]
    for k, e in folds.items():
        out.append(f"- fold {k}: `{e['model']}` tested on part {e['test_part']} ({e['frames']} "
                   f"frames); {_training_data(e)}")
    for prefix, heading, text, alt in FIGURE_SECTIONS:
        mine = [f for f in figures or [] if f.startswith(prefix)]
        if mine:
            out += ["", f"## {heading}", "", text, ""]
            out += [f"![{alt}]({f})" for f in mine]
    if predictions:
        out += ["", "## Per-frame predictions", ""]
        out += [f"- `{p}`" for p in predictions]
    return "\n".join(out) + "\n"
