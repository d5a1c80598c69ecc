"""RTATL's auxiliary tasks in the network: the config fields, the RoI masks, the heads inside
JaaNet (a tensor call unchanged, the supervised path untouched, gradients into the backbone,
saving), and a tiny network with both heads that learns them."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import jaa_keras
from jaa_keras.auxiliary import MAX_MASKED_AUS, roi_mask
from jaa_keras.config import JaaNetConfig
from jaa_keras.losses import JaaNetLoss, flow_loss, inpainting_loss
from schemas.face import NUM_LANDMARKS
from tests._synthetic_faces import synthetic_faces
from tests.conftest import TINY_NETWORK as TINY

CROP = TINY["crop_size"]
BOTH = ("inpainting", "flow")
SUPERVISED = ("au_probability", "au_logit", "landmarks", "attention", "attention_logit",
              "attention_initial")


def images(count, seed):
    return np.random.default_rng(seed).uniform(-1, 1, (count, CROP, CROP, 3)).astype(np.float32)


def tiny(auxiliary=(), seed=0, **overrides):
    keras.utils.set_random_seed(seed)
    return jaa_keras.build_jaanet("bp4d", **TINY, auxiliary=auxiliary, **overrides)


# -- config -------------------------------------------------------------------------------------

def test_config_keeps_one_spelling_of_the_tasks_and_rejects_unusable_values():
    assert jaa_keras.preset("bp4d", auxiliary=["flow", "inpainting"]).auxiliary == BOTH
    for bad in (("depth",), ("flow", "flow"), "flow"):
        with pytest.raises(ValueError, match="auxiliary"):
            jaa_keras.preset("bp4d", auxiliary=bad)
    for field, bad in (("inpainting_weight", -1.0), ("flow_weight", float("nan")),
                       ("inpainting_patch", 0.0), ("inpainting_patch", 1.5)):
        with pytest.raises(ValueError, match=field):
            jaa_keras.preset("bp4d", **{field: bad})


def test_auxiliary_fields_are_not_the_networks_identity_and_older_configs_load():
    plain = jaa_keras.preset("bp4d")
    with_heads = plain.replace(auxiliary=BOTH, inpainting_weight=0.3, flow_weight=2.0,
                               inpainting_patch=0.2)
    assert with_heads == plain  # one seeds or resumes the other
    saved = json.loads(json.dumps(with_heads.to_dict()))  # as a .keras file or summary holds it
    assert JaaNetConfig.from_dict(saved).to_dict() == with_heads.to_dict()
    for field in ("auxiliary", "inpainting_weight", "flow_weight", "inpainting_patch"):
        del saved[field]
    old = JaaNetConfig.from_dict(saved)
    assert (old.auxiliary, old.inpainting_weight, old.flow_weight, old.inpainting_patch) == (
        (), 1.0, 1.0, 0.28)


# -- RoI masks ----------------------------------------------------------------------------------

def landmarks_with_au1_centres(left, right):
    """(98,) landmarks whose AU 1 centres are `left` and `right` (x, y): ruler 20 pixels."""
    points = np.full((NUM_LANDMARKS, 2), 32.0, np.float32)
    points[22], points[25] = (20.0, 40.0), (40.0, 40.0)  # inner eye corners
    points[4] = (left[0], left[1] + 10.0)  # AU 1 sits half a ruler above points 4 and 5
    points[5] = (right[0], right[1] + 10.0)
    return points.reshape(-1)


def test_roi_mask_covers_the_pixels_strictly_inside_the_squares_on_both_centres():
    # 64 crop, patch 1/8: squares of side 8. A pixel (integer centre) is inside when it is less
    # than 4 from the centre on both axes: 17..23 around 20, 37..44 around 40.5.
    landmarks = landmarks_with_au1_centres(left=(20.0, 15.0), right=(40.5, 60.5))
    mask = roi_mask(landmarks, (1,), 64, 0.125, tf.constant([3, 4])).numpy()
    expected = np.zeros((64, 64, 1), np.float32)
    expected[12:19, 17:24] = 1
    expected[57:64, 37:45] = 1  # clipped at the bottom border (57..64 of 57..63)
    np.testing.assert_array_equal(mask, expected)
    assert mask.dtype == np.float32


def test_roi_mask_draws_one_to_three_aus_by_the_seed_inside_tf_data():
    # AUs with centres of their own; random landmarks keep their squares apart, so which AUs a
    # mask holds can be read back from it.
    aus = (1, 2, 4, 6, 7, 9, 10, 12, 17, 23)
    landmarks = np.random.default_rng(0).uniform(4, 172, 2 * NUM_LANDMARKS).astype(np.float32)
    squares = {au: roi_mask(landmarks, (au,), 176, 0.02, [0, 0]).numpy() for au in aus}
    assert sum(squares.values()).max() == 1, "the squares must not overlap for this test"
    seeds = tf.stack([tf.fill([60], 7), tf.range(60)], axis=1)
    masks = np.stack(list(tf.data.Dataset.from_tensor_slices(seeds).map(
        lambda seed: roi_mask(landmarks, aus, 176, 0.02, seed)).as_numpy_iterator()))
    counts, drawn = [], set()
    for mask in masks:
        chosen = [au for au in aus if np.all(mask[squares[au] == 1] == 1)]
        np.testing.assert_array_equal(mask, sum(squares[au] for au in chosen))
        counts.append(len(chosen))
        drawn.update(chosen)
    assert set(counts) == set(range(1, MAX_MASKED_AUS + 1)) and drawn == set(aus)
    # The same seed gives the same mask, eagerly as in the pipeline's graph.
    np.testing.assert_array_equal(roi_mask(landmarks, aus, 176, 0.02, seeds[5]), masks[5])


# -- the heads in the network -------------------------------------------------------------------

@pytest.mark.parametrize("auxiliary", [(), ("inpainting",), ("flow",), BOTH],
                         ids=lambda tasks: "+".join(tasks) or "none")
def test_heads_and_their_trackers_exist_only_for_the_tasks_named(auxiliary):
    model = tiny(auxiliary)
    assert (model.inpainting_decoder is not None, model.flow_head is not None) == (
        "inpainting" in auxiliary, "flow" in auxiliary)
    tracked = {metric.name for metric in model.metrics}
    assert {task for task in BOTH if task in tracked} == set(auxiliary)
    if not auxiliary:
        with pytest.raises(ValueError, match="without auxiliary heads"):
            model({"images": images(2, 0), "auxiliary_images": images(2, 1)})
        return
    outputs = model({"images": images(2, 0), "auxiliary_images": images(3, 1)})
    shapes = {key: tuple(value.shape) for key, value in outputs.items() if key not in SUPERVISED}
    expected = {"inpainting": ("inpainted", (3, CROP, CROP, 3)),
                "flow": ("flow", (3, CROP // 4, CROP // 4, 2))}
    assert shapes == dict(expected[task] for task in auxiliary)


def test_a_seed_gives_the_same_backbone_and_tensor_outputs_with_or_without_heads():
    plain, with_heads = tiny(), tiny(BOTH)
    backbone = len(plain.weights)
    for a, b in zip(plain.weights, with_heads.weights[:backbone]):  # the heads' weights follow
        assert a.path == b.path
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    x = images(2, 2)
    expected = plain(x, training=False)
    for outputs in (with_heads(x, training=False), with_heads({"images": x}, training=False)):
        assert set(outputs) == set(expected)
        for key in expected:
            np.testing.assert_array_equal(outputs[key], expected[key])


def labels(rng, count):
    return {"au": rng.integers(-1, 2, (count, 12)),
            "landmarks": rng.uniform(8, 24, (count, 2 * NUM_LANDMARKS)).astype(np.float32),
            "inter_ocular": np.full(count, 10.0, np.float32)}


def test_auxiliary_images_leave_the_supervised_outputs_and_loss_untouched_in_inference():
    # BatchNorm in inference mode: each face's features do not depend on the rest of the batch,
    # so the labelled faces' outputs and AU loss are what they are without auxiliary images.
    model = tiny(BOTH)
    for weight in model.non_trainable_weights:  # statistics other than the fresh 0 and 1
        weight.assign(np.random.default_rng(3).uniform(0.5, 1.5, weight.shape).astype(np.float32))
    x, y = images(3, 4), labels(np.random.default_rng(5), 3)
    alone = model(x, training=False)
    mixed = model({"images": x, "auxiliary_images": images(4, 6)}, training=False)
    for key in SUPERVISED:
        np.testing.assert_allclose(mixed[key], alone[key], rtol=1e-5, atol=1e-6)
    objective = JaaNetLoss(model.config)
    expected, parts = objective(y, alone), objective(y, {k: mixed[k] for k in SUPERVISED})
    for name in expected:
        assert float(parts[name]) == pytest.approx(float(expected[name]), rel=1e-5)


def test_each_auxiliary_loss_reaches_the_backbone_and_only_its_own_head():
    model = tiny(BOTH)
    rng = np.random.default_rng(7)
    x = {"images": images(2, 8), "auxiliary_images": images(2, 9)}
    mask = (rng.uniform(size=(2, CROP, CROP, 1)) < 0.2).astype(np.float32)
    flow = rng.normal(size=(2, CROP // 4, CROP // 4, 2)).astype(np.float32)
    losses = {
        "inpainting": lambda out: inpainting_loss(x["auxiliary_images"], out["inpainted"], mask),
        "flow": lambda out: flow_loss(flow, out["flow"], np.ones(2, np.float32))}
    modules = {"region": model.region1, "global": model.global_features,
               "alignment": model.alignment_features, "attention": model.attention,
               "au_head": model.au_head, "inpainting": model.inpainting_decoder,
               "flow": model.flow_head}
    weights = {name: layer.trainable_weights for name, layer in modules.items()}
    reached = {}
    for task, loss in losses.items():
        with tf.GradientTape() as tape:
            value = loss(model(x, training=True))
        gradients = tape.gradient(value, weights)
        reached[task] = {name for name, grads in gradients.items()
                         if any(g is not None and np.any(g.numpy() != 0) for g in grads)}
    assert reached == {"inpainting": {"region", "inpainting"}, "flow": {"region", "global", "flow"}}


def test_the_heads_survive_config_and_keras_file_round_trips(tmp_path):
    model = tiny(BOTH, inpainting_weight=0.5)
    x = {"images": images(2, 10), "auxiliary_images": images(2, 11)}
    expected = model(x, training=False)
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    rebuilt = type(model).from_config(model.get_config())
    assert restored.config.to_dict() == rebuilt.config.to_dict() == model.config.to_dict()
    assert rebuilt.inpainting_decoder is not None and rebuilt.flow_head is not None
    outputs = restored(x, training=False)
    assert set(outputs) == set(expected)
    for key in expected:
        np.testing.assert_array_equal(outputs[key], expected[key])


# -- learning -----------------------------------------------------------------------------------

FACES = 4
STEPS = 30        # inpainting 0.31 -> 0.15, flow EPE 1.67 -> 0.22 (2027-01-03)
FLOW = (1.5, -0.75)  # the same displacement everywhere: crop pixels per crop/4 cell


def test_a_tiny_network_with_both_heads_learns_to_inpaint_and_to_predict_flow():
    faces, targets = synthetic_faces(FACES, crop_size=CROP)
    config = jaa_keras.preset("bp4d", **TINY, auxiliary=BOTH)
    masks = np.stack([roi_mask(points, config.aus, CROP, config.inpainting_patch, [0, i])
                      for i, points in enumerate(targets["landmarks"])])
    y = {**targets, "inpainting_target": faces, "inpainting_mask": masks,
         "flow": np.broadcast_to(np.float32(FLOW), (FACES, CROP // 4, CROP // 4, 2)),
         "has_flow": np.ones(FACES, np.float32)}
    x = {"images": faces, "auxiliary_images": faces * (1 - masks)}
    keras.utils.set_random_seed(0)
    model = jaa_keras.build_jaanet(config)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), objective=JaaNetLoss(config))
    history = model.fit(x, y, batch_size=FACES, epochs=STEPS, verbose=0).history
    inpainting, flow = np.array(history["inpainting"]), np.array(history["flow"])
    print(f"inpainting {np.round(inpainting, 3).tolist()}\nflow {np.round(flow, 3).tolist()}")
    # The mean of the last steps: momentum makes the flow error swing from step to step.
    assert inpainting[-5:].mean() < 0.6 * inpainting[0]
    assert flow[-5:].mean() < 0.3 * flow[0]
