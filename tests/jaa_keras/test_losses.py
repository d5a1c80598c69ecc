"""JAA-Net's and RTATL's losses against hand-computed values (the arithmetic is written out
here, not imported)."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from jaa_keras.au_weights import au_loss_weights
from jaa_keras.losses import (LOSS_NAMES, JaaNetLoss, alignment_loss, attention_refine_loss,
                              au_dice_loss, au_softmax_loss, flow_loss, inpainting_loss)

LABELS = np.array([[1, 0, -1],
                   [0, 1, 1]], np.int64)
PROBS = np.array([[0.8, 0.3, 0.9],
                  [0.2, 0.6, 0.5]], np.float32)
WEIGHTS = np.array([0.5, 1.0, 2.0], np.float32)


def logit(p):
    return np.log(p / (1 - p)).astype(np.float32)


def value(tensor):
    return float(np.asarray(tensor))


def config(num_aus=3, **kw):
    return SimpleNamespace(num_aus=num_aus, lambda_align=kw.get("lambda_align", 0.5),
                           lambda_refine=kw.get("lambda_refine", 1e-7),
                           attention_refinement=kw.get("attention_refinement", True),
                           inpainting_weight=kw.get("inpainting_weight", 1.0),
                           flow_weight=kw.get("flow_weight", 1.0))


# --- weights ---------------------------------------------------------------------------------

def test_weights_by_hand():
    # rates 0.5, 0.25, 0.1 -> 1/r = 2, 4, 10, sum 16, n_au = 3 -> 3 * (2, 4, 10) / 16
    weights = au_loss_weights([0.5, 0.25, 0.1])
    assert weights.dtype == np.float32
    np.testing.assert_allclose(weights, [0.375, 0.75, 1.875], rtol=1e-7)
    assert weights.sum() == pytest.approx(3.0)
    np.testing.assert_allclose(au_loss_weights([0.3, 0.3]), [1.0, 1.0])


@pytest.mark.parametrize("rates, index", [([0.5, 0.0, 0.2], 1), ([0.5, 0.2, 1.5], 2),
                                          ([-0.1, 0.5], 0), ([0.5, float("nan")], 1)])
def test_weights_reject_bad_rates_naming_the_au(rates, index):
    with pytest.raises(ValueError, match=f"AU index {index}"):
        au_loss_weights(rates)


def test_weights_reject_empty_and_2d():
    with pytest.raises(ValueError):
        au_loss_weights([])
    with pytest.raises(ValueError):
        au_loss_weights([[0.5, 0.5]])


# --- E_softmax (Eq. 6) -------------------------------------------------------------------------

def test_softmax_loss_by_hand():
    # Known entries (the -1 at [0, 2] is out): w * -[p log q + (1 - p) log(1 - q)], divided by 5.
    terms = [0.5 * -math.log(0.8),   # [0,0] p=1 q=0.8
             1.0 * -math.log(0.7),   # [0,1] p=0 q=0.3
             0.5 * -math.log(0.8),   # [1,0] p=0 q=0.2
             1.0 * -math.log(0.6),   # [1,1] p=1 q=0.6
             2.0 * -math.log(0.5)]   # [1,2] p=1 q=0.5
    expected = sum(terms) / 5
    assert value(au_softmax_loss(LABELS, logit(PROBS), WEIGHTS)) == pytest.approx(expected, rel=1e-6)
    unweighted = (2 * -math.log(0.8) - math.log(0.7) - math.log(0.6) - math.log(0.5)) / 5
    assert value(au_softmax_loss(LABELS, logit(PROBS))) == pytest.approx(unweighted, rel=1e-6)


def test_softmax_loss_all_known_is_the_papers_mean():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, (7, 4))
    probs = rng.uniform(0.01, 0.99, (7, 4))
    weights = np.array([0.4, 0.8, 1.2, 1.6])
    # (1/B) sum_b (1/n_au) sum_i w_i CE_bi
    per_sample = [np.sum(weights * -(labels[b] * np.log(probs[b]) + (1 - labels[b]) * np.log(1 - probs[b])))
                  / 4 for b in range(7)]
    assert value(au_softmax_loss(labels, logit(probs), weights)) == pytest.approx(
        np.mean(per_sample), rel=1e-5)


def test_softmax_loss_gives_a_confidently_wrong_logit_its_full_gradient():
    # d/dx of w * CE(t, sigmoid(x)) / n_known = w * (sigmoid(x) - t) / n_known: +-w / 5 at |x| = 30
    # (computed from clipped probabilities it was exactly 0 beyond the clip).
    logits = tf.Variable([[30.0, -30.0, 30.0],    # [0,0] right, [0,1] right, [0,2] unknown
                          [30.0, -30.0, -30.0]])  # [1,0] wrong, [1,1] wrong, [1,2] wrong
    with tf.GradientTape() as tape:
        loss = au_softmax_loss(LABELS, logits, WEIGHTS)
    gradient = tape.gradient(loss, logits).numpy()
    np.testing.assert_allclose(gradient[1], [0.5 / 5, -1.0 / 5, -2.0 / 5], rtol=1e-6)
    np.testing.assert_allclose(gradient[0], 0.0, atol=1e-13)
    assert value(loss) == pytest.approx((0.5 + 1.0 + 2.0) * 30 / 5, rel=1e-6)


# --- E_dice (Eq. 7) ----------------------------------------------------------------------------

def test_dice_loss_by_hand():
    def term(p, q):
        return 1 - (2 * p * q + 1) / (p * p + q * q + 1)
    expected = (0.5 * term(1, 0.8) + 1.0 * term(0, 0.3) + 0.5 * term(0, 0.2)
                + 1.0 * term(1, 0.6) + 2.0 * term(1, 0.5)) / 5
    # e.g. term(1, 0.8) = 1 - 2.6 / 2.64, term(0, 0.3) = 1 - 1 / 1.09
    assert term(1, 0.8) == pytest.approx(1 - 2.6 / 2.64)
    assert value(au_dice_loss(LABELS, PROBS, WEIGHTS)) == pytest.approx(expected, rel=1e-6)


def test_dice_is_zero_for_perfect_predictions():
    labels = np.array([[1, 0], [0, 1]])
    assert value(au_dice_loss(labels, labels.astype(np.float32))) == pytest.approx(0.0, abs=1e-7)


# --- masking -----------------------------------------------------------------------------------

# Each AU loss with the outputs it takes: log-odds for E_softmax, probabilities for E_dice.
AU_LOSSES = [(au_softmax_loss, (-30.0, 30.0, 0.123)), (au_dice_loss, (0.0, 1.0, 0.123))]


@pytest.mark.parametrize("loss, extremes", AU_LOSSES)
def test_unknown_entries_do_not_matter(loss, extremes):
    rng = np.random.default_rng(2)
    labels = rng.integers(-1, 2, (16, 5))
    probs = rng.uniform(0, 1, (16, 5)).astype(np.float32)
    other = probs.copy()
    unknown = labels == -1
    assert unknown.any()
    other[unknown] = rng.choice(extremes, size=unknown.sum())
    weights = rng.uniform(0.2, 2, 5)
    assert value(loss(labels, probs, weights)) == pytest.approx(value(loss(labels, other, weights)), rel=1e-6)


@pytest.mark.parametrize("loss, extremes", AU_LOSSES)
def test_all_unknown_batch_gives_zero_and_zero_gradient(loss, extremes):
    labels = -np.ones((4, 3), np.int64)
    probs = tf.Variable(np.array([extremes] * 4, np.float32))
    with tf.GradientTape() as tape:
        result = loss(labels, probs, WEIGHTS)
    gradient = tape.gradient(result, probs)
    assert value(result) == 0.0
    assert np.all(np.asarray(gradient) == 0.0)


@pytest.mark.parametrize("loss, extremes", [(au_softmax_loss, (-1e4, 1e4)), (au_dice_loss, (0.0, 1.0))])
def test_gradients_finite_at_the_extremes(loss, extremes):
    labels = np.array([[1, 0, 1, 0]])
    low, high = extremes
    probs = tf.Variable(np.array([[low, high, high, low]], np.float32))
    with tf.GradientTape() as tape:
        result = loss(labels, probs)
    gradient = np.asarray(tape.gradient(result, probs))
    assert np.isfinite(value(result))
    assert np.all(np.isfinite(gradient))


# --- E_align (Eq. 2) ---------------------------------------------------------------------------

def test_alignment_loss_by_hand():
    true = np.random.default_rng(3).uniform(0, 176, (2, 98)).astype(np.float32)
    predicted = true.copy()
    predicted[0, 0::2] += 3.0   # image 0: every point off by (3, 4)
    predicted[0, 1::2] += 4.0
    predicted[1, 10] += 1.0     # image 1: one x off by 1
    inter_ocular = np.array([50.0, 10.0], np.float32)
    image0 = 49 * (9 + 16) / (2 * 50.0 ** 2)  # = 0.245
    image1 = 1.0 / (2 * 10.0 ** 2)             # = 0.005
    assert value(alignment_loss(true, predicted, inter_ocular)) == pytest.approx((image0 + image1) / 2, rel=1e-5)
    # each image uses its own distance
    swapped = value(alignment_loss(true, predicted, inter_ocular[::-1].copy()))
    assert swapped == pytest.approx((1225 / 200 + 1 / 5000) / 2, rel=1e-5)


# --- E_r (Eq. 4) -------------------------------------------------------------------------------

def test_refine_loss_by_hand():
    # (B=2, 2, 2, n_au=2): summed over points and AUs, mean over the batch.
    initial = np.zeros((2, 2, 2, 2), np.float32)
    refined = np.full((2, 2, 2, 2), 0.5, np.float32)
    initial[0, :, :, 0] = [[1.0, 0.0], [0.5, 0.25]]
    refined[0, :, :, 0] = [[0.9, 0.2], [0.5, 0.5]]
    # image 0, AU 0: -[log .9 + log .8 + (.5 log .5 + .5 log .5) + (.25 log .5 + .75 log .5)]
    image0_au0 = -(math.log(0.9) + math.log(0.8) + 2 * math.log(0.5))
    # every other (image, AU) map: target 0, prediction 0.5 -> 4 points of -log .5
    other_map = 4 * -math.log(0.5)
    expected = ((image0_au0 + other_map) + (2 * other_map)) / 2
    assert value(attention_refine_loss(initial, logit(refined))) == pytest.approx(expected, rel=1e-6)


def test_refine_loss_gives_a_confidently_wrong_logit_its_full_gradient():
    # Summed over points, mean over B = 2 images: d E_r / dx = (sigmoid(x) - v) / 2 at every point.
    initial = np.zeros((2, 2, 2, 1), np.float32)
    initial[0, 0, 0, 0], initial[0, 1, 1, 0] = 1.0, 0.3
    logits = tf.Variable(np.full((2, 2, 2, 1), -30.0, np.float32))
    logits[0, 1, 0, 0].assign(30.0)
    with tf.GradientTape() as tape:
        result = attention_refine_loss(initial, logits)
    gradient = tape.gradient(result, logits).numpy()
    assert gradient[0, 0, 0, 0] == pytest.approx(-1.0 / 2, rel=1e-6)  # target 1, x = -30
    assert gradient[0, 1, 0, 0] == pytest.approx(1.0 / 2, rel=1e-6)   # target 0, x = 30
    assert gradient[0, 1, 1, 0] == pytest.approx(-0.3 / 2, rel=1e-6)
    np.testing.assert_allclose(gradient[1], 0.0, atol=1e-13)
    assert np.isfinite(value(result))


# --- JaaNetLoss --------------------------------------------------------------------------------

def _batch(rng, batch=3, num_aus=3, feature=4):
    y_true = {"au": rng.integers(-1, 2, (batch, num_aus)),
              "landmarks": rng.uniform(0, 64, (batch, 98)).astype(np.float32),
              "inter_ocular": rng.uniform(15, 30, (batch,)).astype(np.float32)}
    au_logit = rng.normal(0, 3, (batch, num_aus)).astype(np.float32)
    attention_logit = rng.normal(0, 3, (batch, feature, feature, num_aus)).astype(np.float32)
    y_pred = {"au_logit": au_logit, "au_probability": tf.sigmoid(au_logit).numpy(),
              "landmarks": rng.uniform(0, 64, (batch, 98)).astype(np.float32),
              "attention_logit": attention_logit, "attention": tf.sigmoid(attention_logit).numpy(),
              "attention_initial": rng.uniform(0, 1, (batch, feature, feature, num_aus)).astype(np.float32)}
    return y_true, y_pred


def test_total_loss_combines_the_parts():
    rng = np.random.default_rng(4)
    y_true, y_pred = _batch(rng)
    objective = JaaNetLoss(config(lambda_align=0.5, lambda_refine=1e-3), WEIGHTS)
    parts = {k: value(v) for k, v in objective(y_true, y_pred).items()}
    assert set(parts) == set(LOSS_NAMES)
    assert parts["au_softmax"] == pytest.approx(value(au_softmax_loss(y_true["au"], y_pred["au_logit"], WEIGHTS)))
    assert parts["au_dice"] == pytest.approx(value(au_dice_loss(y_true["au"], y_pred["au_probability"], WEIGHTS)))
    assert parts["align"] == pytest.approx(value(alignment_loss(y_true["landmarks"], y_pred["landmarks"],
                                                                y_true["inter_ocular"])))
    assert parts["refine"] == pytest.approx(value(attention_refine_loss(y_pred["attention_initial"],
                                                                        y_pred["attention_logit"])))
    expected = parts["au_softmax"] + parts["au_dice"] + 0.5 * parts["align"] + 1e-3 * parts["refine"]
    assert parts["loss"] == pytest.approx(expected, rel=1e-6)
    # explicit lambdas override the config (the alignment stage uses lambda_align = 1)
    staged = JaaNetLoss(config(), WEIGHTS, lambda_align=1.0, lambda_refine=0.0)
    staged_total = value(staged(y_true, y_pred)["loss"])
    assert staged_total == pytest.approx(parts["au_softmax"] + parts["au_dice"] + parts["align"], rel=1e-6)


def test_total_loss_with_the_real_config():
    from jaa_keras.config import preset
    cfg = preset("disfa")
    rng = np.random.default_rng(5)
    y_true, y_pred = _batch(rng, num_aus=cfg.num_aus)
    objective = JaaNetLoss(cfg, au_loss_weights(rng.uniform(0.05, 0.6, cfg.num_aus)))
    assert objective.lambda_align == cfg.lambda_align and objective.lambda_refine == cfg.lambda_refine
    parts = objective(y_true, y_pred)
    assert all(np.isfinite(value(v)) and v.dtype == tf.float32 for v in parts.values())


def test_total_loss_without_refinement_needs_no_attention():
    rng = np.random.default_rng(6)
    y_true, y_pred = _batch(rng)
    del y_pred["attention"], y_pred["attention_logit"], y_pred["attention_initial"]
    parts = JaaNetLoss(config(attention_refinement=False), WEIGHTS)(y_true, y_pred)
    assert value(parts["refine"]) == 0.0


def test_total_loss_ignores_unknown_labels_and_is_graph_safe():
    rng = np.random.default_rng(7)
    y_true, y_pred = _batch(rng, batch=5)
    objective = JaaNetLoss(config(), WEIGHTS)
    eager = value(objective(y_true, y_pred)["loss"])
    unknown = y_true["au"] == -1
    changed = {**y_pred,
               "au_probability": np.where(unknown, 0.0, y_pred["au_probability"]).astype(np.float32),
               "au_logit": np.where(unknown, 30.0, y_pred["au_logit"]).astype(np.float32)}
    graph = tf.function(objective, reduce_retracing=True)
    assert value(graph(y_true, changed)["loss"]) == pytest.approx(eager, rel=1e-6)
    # mixed-precision outputs are accepted; the losses stay float32
    half = {k: tf.cast(v, tf.float16) for k, v in y_pred.items()}
    assert objective(y_true, half)["loss"].dtype == tf.float32


def test_total_loss_rejects_wrong_weight_count():
    with pytest.raises(ValueError, match="3 AUs"):
        JaaNetLoss(config(), [1.0, 1.0])


# --- RTATL's auxiliary losses --------------------------------------------------------------------

def test_inpainting_loss_is_the_mean_absolute_error_over_the_masked_pixels():
    target = np.zeros((2, 2, 2, 3), np.float32)
    inpainted = np.full((2, 2, 2, 3), 9.0, np.float32)  # unmasked pixels: far off, and ignored
    mask = np.zeros((2, 2, 2, 1), np.float32)
    mask[0, 0, 0], inpainted[0, 0, 0] = 1, [0.5, -0.25, 1.0]  # face 0: one masked pixel, 1.75
    mask[1, 0, 1], inpainted[1, 0, 1] = 1, [0.1, 0.2, 0.3]    # face 1: two, 0.6 and 2.0
    mask[1, 1, 1], inpainted[1, 1, 1] = 1, [-1.0, 1.0, 0.0]
    inpainted = tf.Variable(inpainted)
    with tf.GradientTape() as tape:
        loss = inpainting_loss(target, inpainted, mask)
    # 3 masked pixels x 3 channels, each weighing the same whichever face it is in.
    assert value(loss) == pytest.approx((1.75 + 0.6 + 2.0) / 9, rel=1e-6)
    gradient = tape.gradient(loss, inpainted).numpy()
    np.testing.assert_allclose(gradient, np.sign(inpainted.numpy()) * mask / 9, rtol=1e-6)


def test_inpainting_loss_is_zero_when_nothing_is_masked():
    inpainted = tf.Variable(np.ones((2, 4, 4, 3), np.float32))
    with tf.GradientTape() as tape:
        loss = inpainting_loss(-np.ones((2, 4, 4, 3), np.float32), inpainted,
                               np.zeros((2, 4, 4, 1), np.float32))
    assert value(loss) == 0.0
    assert np.all(tape.gradient(loss, inpainted).numpy() == 0)


def test_flow_loss_is_the_mean_end_point_error_over_the_faces_with_flow():
    target = np.zeros((3, 2, 2, 2), np.float32)
    flow = np.zeros((3, 2, 2, 2), np.float32)
    flow[0, 1, 0] = (-3.0, 4.0)            # face 0: one cell off by (3, -4), 5; three perfect
    target[1] = np.nan                      # face 1 has no flow: whatever its target holds
    target[2, ..., 0] = 1.0                 # face 2: every cell off by (1, 0)
    has_flow = np.array([1.0, 0.0, 1.0], np.float32)
    flow = tf.Variable(flow)
    with tf.GradientTape() as tape:
        loss = flow_loss(target, flow, has_flow)
    assert value(loss) == pytest.approx((5.0 + 4 * 1.0) / 8, rel=1e-6)  # 2 faces x 4 cells
    gradient = tape.gradient(loss, flow).numpy()
    expected = np.zeros_like(gradient)
    expected[0, 1, 0] = np.array([-3.0, 4.0]) / 5 / 8  # (flow - target) / |flow - target| / 8
    expected[2, ..., 0] = -1.0 / 8
    np.testing.assert_allclose(gradient, expected, rtol=1e-6)  # 0, not NaN, at perfect cells


def test_flow_loss_is_zero_when_no_face_has_flow():
    flow = tf.Variable(np.ones((2, 3, 3, 2), np.float32))
    with tf.GradientTape() as tape:
        loss = flow_loss(np.zeros((2, 3, 3, 2), np.float32), flow, np.zeros(2, np.float32))
    assert value(loss) == 0.0
    assert np.all(tape.gradient(loss, flow).numpy() == 0)


def test_total_loss_adds_the_weighted_auxiliary_parts_when_the_heads_gave_outputs():
    rng = np.random.default_rng(8)
    y_true, y_pred = _batch(rng)
    y_true.update({"inpainting_target": rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32),
                   "inpainting_mask": (rng.uniform(size=(2, 8, 8, 1)) < 0.3).astype(np.float32),
                   "flow": rng.normal(size=(2, 2, 2, 2)).astype(np.float32),
                   "has_flow": np.array([1.0, 0.0], np.float32)})
    auxiliary = {"inpainted": rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32),
                 "flow": rng.normal(size=(2, 2, 2, 2)).astype(np.float32)}
    objective = JaaNetLoss(config(inpainting_weight=0.5, flow_weight=2.0), WEIGHTS)
    supervised = {k: value(v) for k, v in objective(y_true, y_pred).items()}
    assert set(supervised) == set(LOSS_NAMES)  # no auxiliary output, no auxiliary part
    parts = {k: value(v) for k, v in objective(y_true, {**y_pred, **auxiliary}).items()}
    assert parts["inpainting"] == pytest.approx(value(inpainting_loss(
        y_true["inpainting_target"], auxiliary["inpainted"], y_true["inpainting_mask"])))
    assert parts["flow"] == pytest.approx(value(flow_loss(y_true["flow"], auxiliary["flow"],
                                                          y_true["has_flow"])))
    assert parts["loss"] == pytest.approx(
        supervised["loss"] + 0.5 * parts["inpainting"] + 2.0 * parts["flow"], rel=1e-6)
    only_flow = objective(y_true, {**y_pred, "flow": auxiliary["flow"]})
    assert "inpainting" not in only_flow and "flow" in only_flow
