"""Evaluation metrics against scikit-learn and hand examples; streaming metrics against NumPy."""
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import accuracy_score, f1_score

from jaa_keras.metrics import (LandmarkMeanError, MaskedMeanF1, au_detection_scores, landmark_errors,
                               landmark_summary)


def random_labels(rng, frames=400, num_aus=6):
    labels = rng.integers(0, 2, (frames, num_aus))
    labels[rng.uniform(size=labels.shape) < 0.2] = -1
    probabilities = rng.uniform(0, 1, labels.shape).astype(np.float32)
    # AU 4: no positive label and no positive prediction (F1's zero-division case)
    labels[:, 4] = np.where(labels[:, 4] == -1, -1, 0)
    probabilities[:, 4] *= 0.4
    # AU 5: some predictions exactly at the threshold (count as present)
    probabilities[::7, 5] = 0.5
    return labels, probabilities


def test_scores_equal_scikit_learn():
    rng = np.random.default_rng(0)
    labels, probabilities = random_labels(rng)
    scores = au_detection_scores(labels, probabilities)
    for au in range(labels.shape[1]):
        known = labels[:, au] != -1
        truth, predicted = labels[known, au], (probabilities[known, au] >= 0.5).astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert scores["f1"][au] == pytest.approx(f1_score(truth, predicted, zero_division=0), abs=1e-12)
            assert scores["f1"][au] == pytest.approx(f1_score(truth, predicted), abs=1e-12)  # default
        assert scores["accuracy"][au] == pytest.approx(accuracy_score(truth, predicted), abs=1e-12)
    assert scores["f1"][4] == 0.0
    assert scores["mean_f1"] == pytest.approx(np.mean(scores["f1"]))
    assert scores["mean_accuracy"] == pytest.approx(np.mean(scores["accuracy"]))
    assert isinstance(scores["mean_f1"], float)


def test_threshold_is_inclusive_and_configurable():
    labels = np.array([[1], [0]])
    assert au_detection_scores(labels, np.array([[0.5], [0.49]]))["f1"][0] == 1.0
    assert au_detection_scores(labels, np.array([[0.5], [0.49]]), threshold=0.6)["f1"][0] == 0.0


def test_au_without_known_labels_is_nan_and_left_out_of_the_means():
    labels = np.array([[1, -1], [0, -1]])
    probabilities = np.array([[0.9, 0.9], [0.1, 0.1]])
    scores = au_detection_scores(labels, probabilities)
    assert np.isnan(scores["f1"][1]) and np.isnan(scores["accuracy"][1])
    assert scores["mean_f1"] == 1.0 and scores["mean_accuracy"] == 1.0


def test_invalid_labels_are_named():
    with pytest.raises(ValueError, match="frame 1, AU index 0"):
        au_detection_scores(np.array([[1, 0], [9, 0]]), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="must both be"):
        au_detection_scores(np.zeros((2, 2)), np.zeros((2, 3)))


def test_streaming_f1_equals_numpy_over_batches():
    rng = np.random.default_rng(1)
    labels, probabilities = random_labels(rng, frames=300)
    metric = MaskedMeanF1(num_aus=6)
    for start in range(0, 300, 64):
        metric.update_state(labels[start:start + 64], probabilities[start:start + 64])
    assert float(metric.result()) == pytest.approx(au_detection_scores(labels, probabilities)["mean_f1"], rel=1e-6)
    f1, accuracy = (np.asarray(x) for x in metric.per_au())
    scores = au_detection_scores(labels, probabilities)
    np.testing.assert_allclose(f1, scores["f1"], rtol=1e-6)
    np.testing.assert_allclose(accuracy, scores["accuracy"], rtol=1e-6)
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_streaming_f1_takes_dicts_weights_and_runs_in_a_graph():
    rng = np.random.default_rng(2)
    labels, probabilities = random_labels(rng, frames=40)
    weight = (rng.uniform(size=40) < 0.7).astype(np.float32)
    metric = MaskedMeanF1(6)

    @tf.function
    def update(y_true, y_pred, sample_weight):
        metric.update_state(y_true, y_pred, sample_weight=sample_weight)

    for start in (0, 20):
        part = slice(start, start + 20)
        update({"au": labels[part]}, {"au_probability": probabilities[part]}, weight[part])
    keep = weight > 0
    expected = au_detection_scores(labels[keep], probabilities[keep])["mean_f1"]
    assert float(metric.result()) == pytest.approx(expected, rel=1e-6)


def test_metrics_serialize():
    f1 = MaskedMeanF1(num_aus=12, threshold=0.4, name="f1")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(f1))
    assert isinstance(restored, MaskedMeanF1)
    assert (restored.num_aus, restored.threshold, restored.name) == (12, 0.4, "f1")
    error = LandmarkMeanError()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(error))
    assert isinstance(restored, LandmarkMeanError) and restored.name == "landmark_error"


def test_landmark_error_by_hand_and_failure_boundary():
    true = np.random.default_rng(3).uniform(0, 176, (3, 98))
    predicted = true.copy()
    predicted[0, 0::2] += 3.0   # every point off by (3, 4): error 5 / 50 = 0.1
    predicted[0, 1::2] += 4.0
    predicted[1, 0::2] += 6.0   # every point off by (6, 8): 10 / 50 = 0.2
    predicted[1, 1::2] += 8.0
    predicted[2, :2] += (3.0, 4.0)  # one point off by 5: 5 / 49 / 25
    errors = landmark_errors(predicted, true, np.array([50.0, 50.0, 25.0]))
    np.testing.assert_allclose(errors, [0.1, 0.2, 5 / 49 / 25], rtol=1e-12)
    summary = landmark_summary(errors)
    assert summary["mean_error"] == pytest.approx((0.1 + 0.2 + 5 / 49 / 25) / 3)
    assert summary["failure_rate"] == pytest.approx(1 / 3)  # 0.1 exactly is not above 0.1
    assert landmark_summary([0.1, 0.1 + 1e-9])["failure_rate"] == 0.5
    assert landmark_summary(errors, failure_threshold=0.05)["failure_rate"] == pytest.approx(2 / 3)


def test_landmark_inputs_are_checked():
    with pytest.raises(ValueError, match="image 1"):
        landmark_errors(np.zeros((2, 98)), np.zeros((2, 98)), [50.0, 0.0])
    with pytest.raises(ValueError, match="must both be"):
        landmark_errors(np.zeros((2, 98)), np.zeros((2, 96)), [50.0, 40.0])
    with pytest.raises(ValueError):
        landmark_summary([])


def test_streaming_landmark_error_equals_numpy_over_batches():
    rng = np.random.default_rng(4)
    true = rng.uniform(0, 176, (50, 98)).astype(np.float32)
    predicted = (true + rng.normal(0, 3, true.shape)).astype(np.float32)
    inter_ocular = rng.uniform(40, 70, 50).astype(np.float32)
    expected = landmark_errors(predicted, true, inter_ocular)
    by_dict, by_tensor = LandmarkMeanError(), LandmarkMeanError()
    for start in range(0, 50, 16):
        part = slice(start, start + 16)
        by_dict.update_state({"landmarks": true[part], "inter_ocular": inter_ocular[part]},
                             {"landmarks": predicted[part]})
        by_tensor.update_state(np.concatenate([true[part], inter_ocular[part, None]], axis=1), predicted[part])
    assert float(by_dict.result()) == pytest.approx(expected.mean(), rel=1e-5)
    assert float(by_tensor.result()) == pytest.approx(expected.mean(), rel=1e-5)
    weighted = LandmarkMeanError()
    weight = np.zeros(50, np.float32)
    weight[:10] = 1.0
    weighted.update_state({"landmarks": true, "inter_ocular": inter_ocular}, {"landmarks": predicted}, weight)
    assert float(weighted.result()) == pytest.approx(expected[:10].mean(), rel=1e-5)
    weighted.reset_state()
    assert float(weighted.result()) == 0.0
