"""JAA-Net's losses (paper Eq. 2, 4, 6, 7; docs/network.md) and RTATL's auxiliary ones.

    E = E_au + lambda1 * E_align + lambda2 * E_r,    E_au = E_softmax + E_dice
    (+ inpainting_weight * E_inpaint + flow_weight * E_flow with auxiliary heads)

All functions take (y_true, y_pred) in Keras order, compute in float32 (mixed-precision outputs are
cast up first) and return a scalar tensor. AU labels are 1 present, 0 absent and
`schemas.example.UNKNOWN_LABEL` (-1) unknown; unknown entries enter no loss.

Masking and normalisation of the AU losses (E_softmax and E_dice)
-----------------------------------------------------------------
The paper averages the per-AU terms over the n_au AUs (1/n_au) and, for a mini-batch, over its B
samples, i.e. it divides the weighted sum over all B * n_au (sample, AU) entries by B * n_au. With
unknown labels we divide the weighted sum over the KNOWN entries by the NUMBER of known entries:

    E = sum_{b,i known} w_i * term_{b,i}  /  max(#known entries in the batch, 1)

* With every label known this is exactly the paper's (1/B) sum_b (1/n_au) sum_i w_i term_{b,i}.
* Each known label carries the same weight w_i whatever else is missing in its row or column: we do
  not renormalise per sample (that would let a sample with one known label count n_au times) or per
  AU (one known label of an AU in a batch would count B times), and not by the sum of the weights
  (that would cancel w_i for a sample with a single known label and undo the class weighting).
* A batch whose labels are all unknown gives exactly 0 (and zero gradients), never NaN.

Cross-entropies from logits
---------------------------
E_softmax takes each AU's log-odds x = z_present - z_absent (the model's `au_logit`) and E_r the
refinement's logits (`attention_logit`), as both authors' releases do (PyTorch: log_softmax +
NLLLoss for the AUs, BCELoss for E_r; Caffe: SoftmaxWithLoss and SigmoidCrossEntropyLoss). Per
entry the cross-entropy with target t is t * softplus(-x) + (1 - t) * softplus(x), whose gradient
sigmoid(x) - t stays near -1 or 1 however confidently wrong x is. Computed from clipped
probabilities instead, every entry beyond the clip (|x| > ~16 in float32) gets no gradient at all,
and a freshly initialised summed-branch network puts most of its AU outputs there. The Dice loss
is a function of the probabilities themselves and takes `au_probability`.
"""
import numpy as np
from keras import ops

from schemas.example import UNKNOWN_LABEL

# Dice smooth term (the paper's epsilon in Eq. 7; docs/network.md: 1).
DICE_SMOOTH = 1.0
# Floor on the inter-ocular distance (pixels) so one corrupt example cannot produce inf/NaN.
# Real inter-ocular distances in a 176 crop are tens of pixels; the pipeline rejects degenerate faces.
MIN_INTER_OCULAR = 1e-3

LOSS_NAMES = ("loss", "au_softmax", "au_dice", "align", "refine")


def _au_weights(weights):
    if weights is None:
        return ops.ones((), dtype="float32")  # broadcasts: every AU weighted 1
    return ops.cast(ops.convert_to_tensor(weights), "float32")


def _masked_weighted_mean(terms, labels, weights):
    """sum over known (sample, AU) entries of w_i * term / number of known entries (module doc)."""
    known = ops.cast(ops.not_equal(labels, UNKNOWN_LABEL), "float32")
    total = ops.sum(terms * weights * known)
    return total / ops.maximum(ops.sum(known), 1.0)


def _au_inputs(labels, predictions):
    labels = ops.convert_to_tensor(labels)
    predictions = ops.cast(predictions, "float32")
    # Unknown entries get target 0 so their (masked-out) terms stay finite.
    targets = ops.cast(ops.where(ops.equal(labels, UNKNOWN_LABEL), 0, labels), "float32")
    return labels, targets, predictions


def sigmoid_cross_entropy(targets, logits):
    """-[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))] per entry, from the logits x (module doc)."""
    return targets * ops.softplus(-logits) + (1.0 - targets) * ops.softplus(logits)


def au_softmax_loss(labels, logits, weights=None):
    """Weighted multi-label softmax loss E_softmax (Eq. 6), masked, from the AU log-odds.

    labels: (B, n_au) int, 1 / 0 / -1 (unknown). logits: (B, n_au) log-odds
    x = z_present - z_absent of each AU's 2-way softmax, so p_hat = P(present) = sigmoid(x) and
    log p_hat = -softplus(-x), log(1 - p_hat) = -softplus(x). weights: (n_au,) w_i or None (all 1).
    Per entry: -w_i [p log p_hat + (1 - p) log(1 - p_hat)]; normalised over the known entries as
    the module docstring says.
    """
    labels, targets, logits = _au_inputs(labels, logits)
    return _masked_weighted_mean(sigmoid_cross_entropy(targets, logits), labels, _au_weights(weights))


def au_dice_loss(labels, probabilities, weights=None, smooth: float = DICE_SMOOTH):
    """Weighted multi-label Dice loss E_dice (Eq. 7), per sample and AU, masked.

    Per entry: w_i * (1 - (2 p p_hat + smooth) / (p^2 + p_hat^2 + smooth)), smooth = 1 (paper);
    normalised over the known entries as the module docstring says. (The PyTorch release pools the
    Dice over the batch per AU; docs/network.md and the paper's notation take it per sample.)
    """
    labels, targets, probabilities = _au_inputs(labels, probabilities)
    dice = 1.0 - (2.0 * targets * probabilities + smooth) / (
        ops.square(targets) + ops.square(probabilities) + smooth)
    return _masked_weighted_mean(dice, labels, _au_weights(weights))


def alignment_loss(true_landmarks, predicted_landmarks, inter_ocular):
    """Face alignment loss E_align (Eq. 2), mean over the batch.

    Per image: sum over the 2 * n_align coordinates of (y - y_hat)^2 / (2 d^2), d the ground-truth
    inter-ocular distance of that same image (floored at MIN_INTER_OCULAR).
    true_landmarks, predicted_landmarks: (B, 2 * n_align), x0, y0, x1, y1, ... in the same pixel
    units as inter_ocular (B,).
    """
    true_landmarks = ops.cast(true_landmarks, "float32")
    predicted_landmarks = ops.cast(predicted_landmarks, "float32")
    distance = ops.maximum(ops.reshape(ops.cast(inter_ocular, "float32"), (-1,)), MIN_INTER_OCULAR)
    squared = ops.sum(ops.square(true_landmarks - predicted_landmarks), axis=-1)
    return ops.mean(squared / (2.0 * ops.square(distance)))


def attention_refine_loss(initial_maps, refined_logits):
    """Attention refinement constraint E_r (Eq. 4), mean over the batch, from the refinement logits.

    initial_maps: (B, F, F, n_au) targets v in [0, 1]; refined_logits: same shape, the refinement
    branch's logits, whose sigmoid is the refined map v_hat. Per image: -sum over AUs and map
    points of [v log v_hat + (1 - v) log(1 - v_hat)] (SUMMED, as the paper; the PyTorch release
    averages over points and compensates with lambda2 = 1e-4 instead of 1e-7).
    """
    targets = ops.cast(initial_maps, "float32")
    cross_entropy = sigmoid_cross_entropy(targets, ops.cast(refined_logits, "float32"))
    per_image = ops.sum(ops.reshape(cross_entropy, (ops.shape(cross_entropy)[0], -1)), axis=-1)
    return ops.mean(per_image)


def inpainting_loss(target, inpainted, mask):
    """RoI inpainting loss E_inpaint: the mean absolute error over the masked pixels.

    target: (B_u, H, W, 3) the faces before masking, in [-1, 1]; inpainted: the same shape, the
    decoder's output; mask: (B_u, H, W, 1), 1 on the masked pixels, 0 elsewhere.
    sum over masked pixels and the 3 channels of |target - inpainted|, divided by 3 x the number
    of masked pixels of the whole batch (every masked pixel weighs the same, whichever face it
    is in); 0, with zero gradients, when no pixel is masked. Unmasked pixels enter no loss: the
    decoder is not asked to copy what it sees.
    """
    target = ops.cast(target, "float32")
    inpainted = ops.cast(inpainted, "float32")
    mask = ops.cast(mask, "float32")
    total = ops.sum(ops.abs(target - inpainted) * mask)
    return total / ops.maximum(3.0 * ops.sum(mask), 1.0)


def flow_loss(target, flow, has_flow):
    """Single-image optical-flow loss E_flow: the mean end-point error over the faces with a target.

    target, flow: (B_u, h, w, 2) displacements (dx, dy) in crop pixels, one per cell of the
    crop/4 map; has_flow: (B_u,) 1 for a face with a flow target, 0 for one without (whose
    target is ignored, whatever it holds).
    Per cell the end-point error sqrt((dx - dx_hat)^2 + (dy - dy_hat)^2); summed over the cells
    of the faces with a target and divided by their number (h * w per such face); 0, with zero
    gradients, when no face has a target. The error's gradient at a perfect cell is 0, not NaN.
    """
    flow = ops.cast(flow, "float32")
    has_flow = ops.reshape(ops.cast(has_flow, "float32") > 0, (-1, 1, 1))
    difference = ops.where(has_flow[..., None], ops.cast(target, "float32") - flow, 0.0)
    squared = ops.sum(ops.square(difference), axis=-1)
    # sqrt has an infinite derivative at 0: take it where the error is positive only.
    positive = squared > 0
    error = ops.where(positive, ops.sqrt(ops.where(positive, squared, 1.0)), 0.0)
    cells = ops.cast(ops.shape(squared)[1] * ops.shape(squared)[2], "float32")
    faces = ops.sum(ops.cast(has_flow, "float32"))
    return ops.sum(error) / ops.maximum(faces * cells, 1.0)


class JaaNetLoss:
    """The full objective E = E_softmax + E_dice + lambda_align * E_align + lambda_refine * E_r.

    config: a JaaNetConfig (uses num_aus, lambda_align, lambda_refine, attention_refinement).
    au_weights: (n_au,) w_i, e.g. au_loss_weights(rates), or None for all 1.
    lambda_align / lambda_refine: None takes the config's value (the alignment stage passes 1.0).

    __call__(y_true, y_pred) -> {"loss", "au_softmax", "au_dice", "align", "refine"}, float32 scalars.
      y_true: "au" (B, n_au) int with -1 unknown, "landmarks" (B, 98), "inter_ocular" (B,).
      y_pred: the model's output dict: "au_logit" (E_softmax), "au_probability" (E_dice),
              "landmarks", "attention_logit" and "attention_initial" (E_r). With
              config.attention_refinement False the refined maps are not learned, E_r is not
              computed and "refine" is 0 (the attention keys may be absent).
    Auxiliary parts, each only when y_pred has its head's output (a model with that head, called
    on auxiliary images), added to "loss" with the config's weight:
      "inpainting" = inpainting_loss(y_true["inpainting_target"], y_pred["inpainted"],
                                     y_true["inpainting_mask"]), times config.inpainting_weight;
      "flow" = flow_loss(y_true["flow"], y_pred["flow"], y_true["has_flow"]), times
               config.flow_weight.
    """

    def __init__(self, config, au_weights=None, lambda_align=None, lambda_refine=None):
        self.config = config
        num_aus = config.num_aus
        if au_weights is None:
            au_weights = np.ones((num_aus,), np.float32)
        self.au_weights = np.asarray(au_weights, np.float32).reshape(-1)
        if self.au_weights.shape != (num_aus,):
            raise ValueError(f"au_weights has {self.au_weights.size} values; the config has {num_aus} AUs")
        if not np.all(np.isfinite(self.au_weights)) or np.any(self.au_weights < 0):
            raise ValueError(f"au_weights must be finite and non-negative, got {self.au_weights}")
        self.lambda_align = float(config.lambda_align if lambda_align is None else lambda_align)
        self.lambda_refine = float(config.lambda_refine if lambda_refine is None else lambda_refine)
        self.refinement = bool(getattr(config, "attention_refinement", True))
        self.inpainting_weight = float(config.inpainting_weight)
        self.flow_weight = float(config.flow_weight)

    def __call__(self, y_true: dict, y_pred: dict) -> dict:
        labels = y_true["au"]
        parts = {
            "au_softmax": au_softmax_loss(labels, y_pred["au_logit"], self.au_weights),
            "au_dice": au_dice_loss(labels, y_pred["au_probability"], self.au_weights),
            "align": alignment_loss(y_true["landmarks"], y_pred["landmarks"], y_true["inter_ocular"]),
        }
        if self.refinement:
            parts["refine"] = attention_refine_loss(y_pred["attention_initial"],
                                                    y_pred["attention_logit"])
        else:
            parts["refine"] = ops.zeros((), dtype="float32")
        total = (parts["au_softmax"] + parts["au_dice"] + self.lambda_align * parts["align"]
                 + self.lambda_refine * parts["refine"])
        if "inpainted" in y_pred:
            parts["inpainting"] = inpainting_loss(y_true["inpainting_target"], y_pred["inpainted"],
                                                  y_true["inpainting_mask"])
            total = total + self.inpainting_weight * parts["inpainting"]
        if "flow" in y_pred:
            parts["flow"] = flow_loss(y_true["flow"], y_pred["flow"], y_true["has_flow"])
            total = total + self.flow_weight * parts["flow"]
        return {"loss": total, **parts}

    def __repr__(self):
        return (f"JaaNetLoss(num_aus={self.au_weights.size}, lambda_align={self.lambda_align}, "
                f"lambda_refine={self.lambda_refine}, refinement={self.refinement}, "
                f"inpainting_weight={self.inpainting_weight}, flow_weight={self.flow_weight})")
