"""Evaluation metrics (docs/evaluation.md) and streaming Keras metrics.

NumPy evaluation functions (whole test fold at once):
  au_detection_scores(labels, probabilities, threshold=0.5)
  landmark_errors(predicted, true, inter_ocular)
  landmark_summary(errors, failure_threshold=0.1)
Keras 3 streaming metrics (training progress):
  MaskedMeanF1(num_aus, threshold=0.5, name="f1")
  LandmarkMeanError(name="landmark_error")

Each formula is written once, with keras.ops, in the private helpers below; the NumPy functions run
them eagerly in float64 on whole arrays, the streaming metrics run them on each batch and keep the
counts (F1) or sums (landmark error) in variables, so a streaming result over several batches
equals the NumPy function over their concatenation.

Choices:
* A frame counts for an AU only where that AU's label is known (not -1). Prediction: P >= threshold.
* F1 of the positive class = 2 TP / (2 TP + FP + FN). An AU with no positive labels and no positive
  predictions (TP + FP + FN = 0) scores F1 = 0, as scikit-learn's f1_score with zero_division=0
  (also its default, which warns).
* An AU with no known label at all has no score: NaN in the per-AU arrays of au_detection_scores,
  and it is left out of the means over AUs (a mean over no AU is NaN; the streaming F1 reports 0
  then, before it has seen a label).
* Landmark failure: an image fails when its normalised error is strictly ABOVE the threshold
  ("share of images above 0.1"); an error of exactly 0.1 is not a failure.
"""
import keras
import numpy as np
from keras import ops

from jaa_keras.losses import MIN_INTER_OCULAR
from schemas.example import UNKNOWN_LABEL

# ---------------------------------------------------------------------------------------------
# The formulas, once (keras.ops: eager NumPy-in for evaluation, graph for the streaming metrics).


def _confusion_counts(labels, probabilities, threshold, sample_weight=None, dtype="float32"):
    """Per-AU (TP, FP, FN, TN) over the known entries; (B, n_au) in, four (n_au,) out."""
    labels = ops.convert_to_tensor(labels)
    known = ops.not_equal(labels, UNKNOWN_LABEL)
    actual = ops.logical_and(known, ops.equal(labels, 1))
    negative = ops.logical_and(known, ops.equal(labels, 0))
    predicted = ops.greater_equal(ops.cast(probabilities, dtype), threshold)
    weight = 1.0
    if sample_weight is not None:
        weight = ops.reshape(ops.cast(sample_weight, dtype), (-1, 1))

    def count(mask):
        return ops.sum(ops.cast(mask, dtype) * weight, axis=0)

    not_predicted = ops.logical_not(predicted)
    return (count(ops.logical_and(actual, predicted)), count(ops.logical_and(negative, predicted)),
            count(ops.logical_and(actual, not_predicted)), count(ops.logical_and(negative, not_predicted)))


def _scores_from_counts(tp, fp, fn, tn):
    """Per-AU F1 (0 where TP + FP + FN = 0), accuracy, and whether the AU had any known label."""
    f1_denominator = 2.0 * tp + fp + fn
    f1 = ops.where(f1_denominator > 0, 2.0 * tp / ops.maximum(f1_denominator, 1e-12), 0.0)
    total = tp + fp + fn + tn
    accuracy = ops.where(total > 0, (tp + tn) / ops.maximum(total, 1e-12), 0.0)
    return f1, accuracy, total > 0


def _mean_over_known(values, known):
    """Mean over the AUs that had a known label; 0 if none had."""
    known = ops.cast(known, values.dtype)
    return ops.sum(values * known) / ops.maximum(ops.sum(known), 1.0)


def _normalized_landmark_errors(predicted, true, inter_ocular, dtype="float32"):
    """Per image: mean over points of the Euclidean error / the image's inter-ocular distance."""
    predicted = ops.cast(predicted, dtype)
    true = ops.cast(true, dtype)
    batch = ops.shape(true)[0]
    difference = ops.reshape(predicted - true, (batch, -1, 2))
    point_errors = ops.sqrt(ops.sum(ops.square(difference), axis=-1))
    distance = ops.maximum(ops.reshape(ops.cast(inter_ocular, dtype), (-1,)), MIN_INTER_OCULAR)
    return ops.mean(point_errors, axis=-1) / distance


# ---------------------------------------------------------------------------------------------
# NumPy evaluation.


def au_detection_scores(labels, probabilities, threshold: float = 0.5) -> dict:
    """Frame-based per-AU F1 (positive class) and accuracy at P >= threshold, -1 labels excluded.

    labels: (N, n_au) with 1 / 0 / -1; probabilities: (N, n_au) P(present).
    Returns {"f1": (n_au,), "accuracy": (n_au,), "mean_f1": float, "mean_accuracy": float}
    (float64; NaN for an AU without any known label, which the means leave out; see module doc).
    """
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if labels.ndim != 2 or labels.shape != probabilities.shape:
        raise ValueError(f"labels {labels.shape} and probabilities {probabilities.shape} must both be "
                         "(frames, AUs)")
    bad = ~np.isin(labels, (0, 1, UNKNOWN_LABEL))
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(f"AU labels must be 1, 0 or {UNKNOWN_LABEL} (unknown); frame {row}, AU index "
                         f"{column} has {labels[row, column]!r}")
    if not np.all(np.isfinite(probabilities)):
        raise ValueError("probabilities contain NaN or inf")
    counts = _confusion_counts(labels.astype(np.int64), probabilities, threshold, dtype="float64")
    f1, accuracy, known = (ops.convert_to_numpy(x) for x in _scores_from_counts(*counts))
    f1 = np.where(known, f1, np.nan).astype(np.float64)
    accuracy = np.where(known, accuracy, np.nan).astype(np.float64)
    any_known = bool(known.any())
    return {
        "f1": f1,
        "accuracy": accuracy,
        "mean_f1": float(np.nanmean(f1)) if any_known else float("nan"),
        "mean_accuracy": float(np.nanmean(accuracy)) if any_known else float("nan"),
    }


def landmark_errors(predicted, true, inter_ocular) -> np.ndarray:
    """Per-image normalised mean error (N,): mean over the points of the Euclidean error divided by
    the image's ground-truth inter-ocular distance. predicted, true: (N, 2K) as x0, y0, x1, y1, ...;
    inter_ocular: (N,) in the same units, > 0."""
    predicted = np.asarray(predicted, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    inter_ocular = np.asarray(inter_ocular, dtype=np.float64)
    if true.ndim != 2 or true.shape[1] % 2 or predicted.shape != true.shape:
        raise ValueError(f"predicted {predicted.shape} and true {true.shape} landmarks must both be "
                         "(images, 2 * points)")
    if inter_ocular.shape != (true.shape[0],):
        raise ValueError(f"inter_ocular must be ({true.shape[0]},), got {inter_ocular.shape}")
    if not np.all(inter_ocular > 0):
        index = int(np.flatnonzero(~(inter_ocular > 0))[0])
        raise ValueError(f"inter-ocular distance of image {index} is {inter_ocular[index]!r}; it must be > 0")
    return ops.convert_to_numpy(
        _normalized_landmark_errors(predicted, true, inter_ocular, dtype="float64")).astype(np.float64)


def landmark_summary(errors, failure_threshold: float = 0.1) -> dict:
    """{"mean_error": mean over images, "failure_rate": share of images with error > threshold}."""
    errors = np.asarray(errors, dtype=np.float64).reshape(-1)
    if errors.size == 0:
        raise ValueError("landmark_summary needs at least one image's error")
    if not np.all(np.isfinite(errors)):
        raise ValueError("landmark errors contain NaN or inf")
    return {"mean_error": float(errors.mean()),
            "failure_rate": float(np.mean(errors > failure_threshold))}


# ---------------------------------------------------------------------------------------------
# Streaming Keras metrics. Both accept either the training dicts or plain tensors:
#   MaskedMeanF1.update_state(y_true, y_pred)
#       y_true: dict with "au" (B, n_au), or that tensor; y_pred: dict with "au_probability", or that tensor.
#   LandmarkMeanError.update_state(y_true, y_pred)
#       y_true: dict with "landmarks" (B, 2K) and "inter_ocular" (B,), or one (B, 2K + 1) tensor
#               [landmarks..., inter_ocular]; y_pred: dict with "landmarks", or that (B, 2K) tensor.
# So inside the model's compute_loss: metric.update_state(y, y_pred) with the dataset's target
# dict and the model's output dict. sample_weight (B,) weights the frames / images.


@keras.saving.register_keras_serializable(package="jaa_keras")
class MaskedMeanF1(keras.metrics.Metric):
    """Mean over AUs of the frame-based F1, accumulating per-AU TP/FP/FN/TN over known labels."""

    def __init__(self, num_aus, threshold=0.5, name="f1", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_aus = int(num_aus)
        self.threshold = float(threshold)
        self.true_positives, self.false_positives, self.false_negatives, self.true_negatives = (
            self.add_variable(shape=(self.num_aus,), initializer="zeros", name=name_)
            for name_ in ("true_positives", "false_positives", "false_negatives", "true_negatives"))

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = y_true["au"] if isinstance(y_true, dict) else y_true
        probabilities = y_pred["au_probability"] if isinstance(y_pred, dict) else y_pred
        counts = _confusion_counts(labels, probabilities, self.threshold, sample_weight, self.dtype)
        for variable, value in zip(self._counts(), counts):
            variable.assign_add(value)

    def _counts(self):
        return self.true_positives, self.false_positives, self.false_negatives, self.true_negatives

    def per_au(self):
        """Per-AU (F1, accuracy) so far (0 for an AU without a known label)."""
        f1, accuracy, _ = _scores_from_counts(*(ops.convert_to_tensor(v) for v in self._counts()))
        return f1, accuracy

    def result(self):
        f1, _, known = _scores_from_counts(*(ops.convert_to_tensor(v) for v in self._counts()))
        return _mean_over_known(f1, known)

    def get_config(self):
        return {**super().get_config(), "num_aus": self.num_aus, "threshold": self.threshold}


@keras.saving.register_keras_serializable(package="jaa_keras")
class LandmarkMeanError(keras.metrics.Metric):
    """Running mean over images of the inter-ocular-normalised landmark error (see landmark_errors)."""

    def __init__(self, name="landmark_error", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        if isinstance(y_true, dict):
            true, inter_ocular = y_true["landmarks"], y_true["inter_ocular"]
        else:
            y_true = ops.convert_to_tensor(y_true)
            true, inter_ocular = y_true[:, :-1], y_true[:, -1]
        predicted = y_pred["landmarks"] if isinstance(y_pred, dict) else y_pred
        errors = _normalized_landmark_errors(predicted, true, inter_ocular, self.dtype)
        if sample_weight is None:
            weight = ops.ones_like(errors)
        else:
            weight = ops.reshape(ops.cast(sample_weight, self.dtype), (-1,)) * ops.ones_like(errors)
        self.total.assign_add(ops.sum(errors * weight))
        self.count.assign_add(ops.sum(weight))

    def result(self):
        return ops.divide_no_nan(ops.convert_to_tensor(self.total), ops.convert_to_tensor(self.count))

    def get_config(self):
        return super().get_config()
