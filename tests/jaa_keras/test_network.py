"""The network matches the paper and the authors' release: sizes, attention maps, gradients."""
import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import keras

import jaa_keras
from benchmarks.alternative_forms import au_branches_loop, patchwise_loop
from jaa_keras.layers import (AdaptiveAttention, DenseHead, FeatureStack, InitialAttentionMaps,
                              PatchwiseConv, RegionLayer, hierarchical_branches)
from jaa_keras.losses import JaaNetLoss, attention_refine_loss
from jaa_keras.model import global_dtype_policy
from schemas.face import NUM_LANDMARKS
from tests._synthetic_faces import synthetic_faces
from tests.conftest import TINY_NETWORK as TINY

REPO = Path(__file__).resolve().parents[2]


def count(weights) -> int:
    return sum(int(np.prod(w.shape)) for w in weights)


@pytest.fixture(scope="module")
def bp4d_full():
    keras.utils.set_random_seed(0)
    return jaa_keras.build_jaanet("bp4d")


# -- sizes -------------------------------------------------------------------------------------

def test_bp4d_preset_has_the_release_parameter_count_per_module(bp4d_full):
    model = bp4d_full
    assert count(model.trainable_weights) == 22_162_854
    assert count(model.non_trainable_weights) == 40_320  # BatchNorm moving statistics
    per_module = {m: count(w for layer in model.module_layers(m) for w in layer.trainable_weights)
                  for m in ("region", "alignment", "global", "au_head")}
    assert per_module == {"region": 1_615_392, "alignment": 2_912_098, "global": 813_312,
                          "au_head": 6_156_824}
    refinement = count(model.attention.refine.trainable_weights)
    local = count(model.attention.local.trainable_weights)
    assert (refinement, local) == (905_484, 9_759_744)


def test_caffe_feature_stacks_shrink_only_the_heads_inputs():
    """The Caffe release's stacks end at 160x3x3, not 160x5x5: the same convolutions, and the
    alignment and AU heads' first layers read 1440 and 3 x 1440 features instead of 4000 and
    12000 (BP4D_train_val.prototxt: align_feat and au_feat on pool5)."""
    model = jaa_keras.build_jaanet("bp4d", feature_stack="caffe")
    outputs = model(np.zeros((1, 176, 176, 3), np.float32), training=False)
    assert model.global_features.compute_output_shape((None, 44, 44, 64)) == (None, 3, 3, 160)
    assert tuple(outputs["au_logit"].shape) == (1, 12)
    fewer_inputs = (4000 - 1440) + (12000 - 3 * 1440)
    assert count(model.trainable_weights) == 22_162_854 - fewer_inputs * 512


def test_caffe_feature_stack_computes_as_caffe_does():
    """Caffe pads its stride-2 convolution by one pixel on every side and its poolings round up
    (an odd side keeps its last row and column); checked on an odd 11 x 11 input."""
    stack = FeatureStack((4, 5, 6), "pytorch", layout="caffe")
    x = np.random.default_rng(0).normal(size=(2, 11, 11, 3)).astype(np.float32)
    expected = x
    outputs = stack(x, training=False)
    for i, (conv, norm) in enumerate(zip(stack.convs, stack.norms)):
        if i == 0:
            expected = tf.nn.conv2d(expected, conv.kernel, 2, [[0, 0], [1, 1], [1, 1], [0, 0]])
        else:
            expected = tf.nn.conv2d(expected, conv.kernel, 1, "SAME")
        expected = tf.nn.relu(norm(expected + conv.bias, training=False))
        if i % 2:
            odd = expected.shape[1] % 2
            expected = tf.pad(expected, [[0, 0], [0, odd], [0, odd], [0, 0]],
                              constant_values=-np.inf)
            expected = tf.nn.max_pool2d(expected, 2, 2, "VALID")
    assert tuple(outputs.shape) == (2, 1, 1, 6)  # 11 -> 6 (stride 2) -> 3 -> 2 -> 1
    np.testing.assert_allclose(outputs, expected, atol=1e-5)


def test_disfa_preset_has_the_release_parameter_count():
    assert count(jaa_keras.build_jaanet("disfa").trainable_weights) == 18_603_674


@pytest.mark.parametrize("channels", [32, 64])
def test_hierarchical_convolutions_follow_the_paper_formula(channels):
    layer = RegionLayer(channels, hierarchical_branches(channels))
    layer.build((None, 176, 176, 3))
    c = channels // 4
    conv_weights = [w for branch in layer.patchwise for w in branch.conv.trainable_weights]
    assert count(conv_weights) == 4932 * c * c + 148 * c


def test_outputs_for_a_176_batch(bp4d_full):
    outputs = bp4d_full(np.zeros((2, 176, 176, 3), np.float32), training=False)
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {
        "au_probability": (2, 12), "au_logit": (2, 12), "landmarks": (2, 98),
        "attention": (2, 44, 44, 12), "attention_logit": (2, 44, 44, 12),
        "attention_initial": (2, 44, 44, 12)}
    probability = outputs["au_probability"].numpy()
    assert np.all((probability >= 0) & (probability <= 1))
    np.testing.assert_allclose(probability, tf.sigmoid(outputs["au_logit"]), atol=1e-6)
    np.testing.assert_allclose(outputs["attention"], tf.sigmoid(outputs["attention_logit"]), atol=1e-6)


def test_au_head_inputs_are_what_the_head_turns_into_the_au_outputs(bp4d_full):
    faces, _ = synthetic_faces(2, 176)
    inputs = bp4d_full.au_head_inputs(faces)
    assert tuple(inputs.shape) == (2, 5, 5, 3 * 160)  # alignment, global, summed local stacks
    logit, _ = bp4d_full.au_head(inputs)
    np.testing.assert_allclose(logit, bp4d_full(faces, training=False)["au_logit"], atol=1e-5)


# -- the authors' initialisation ----------------------------------------------------------------

def test_paper_network_starts_with_unsaturated_au_outputs(bp4d_full):
    # Summed AU branches, Caffe initialisation, training mode (batch statistics), 9 rendered and
    # aligned synthetic faces. Keras' glorot_uniform put 48-68 % of these log-odds beyond +-10.
    assert (bp4d_full.config.local_merge, bp4d_full.config.initialization) == ("sum", "caffe")
    images, _ = synthetic_faces(9)
    logits = bp4d_full(images, training=True)["au_logit"].numpy()
    assert np.mean(np.abs(logits) > 10) < 0.01


# One patch's own 3x3 convolution from 4 to 16 channels: fan_in 36, fan_out 144.
PATCH_FAN_IN, PATCH_FAN_OUT = 36, 144
# (kernel standard deviation, uniform bound or None, bias standard deviation) of each scheme.
EXPECTED_DRAWS = {
    "caffe": lambda fan_in, fan_out: (0.01, None, 0.0),
    "pytorch": lambda fan_in, fan_out: (1 / math.sqrt(3 * fan_in), 1 / math.sqrt(fan_in),
                                        1 / math.sqrt(3 * fan_in)),
    "keras": lambda fan_in, fan_out: (math.sqrt(2 / (fan_in + fan_out)),
                                      math.sqrt(6 / (fan_in + fan_out)), 0.0),
}


def assert_drawn_as(weights, kernel_std, bound, bias_std):
    kernel, bias = (np.asarray(w) for w in weights)
    assert abs(kernel.mean()) < 0.05 * kernel_std
    assert kernel.std() == pytest.approx(kernel_std, rel=0.03)
    if bound is not None:
        assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.99 * bound
    assert bias.std() == pytest.approx(bias_std, rel=0.1, abs=1e-12)


@pytest.mark.parametrize("scheme", sorted(EXPECTED_DRAWS))
def test_weights_are_drawn_as_the_scheme_says(scheme):
    # 64 patches: the grouped kernel must look like 64 separate 4 -> 16 convolutions' kernels
    # (Keras' own glorot_uniform would count all 1,024 filters in fan_out).
    patchwise = PatchwiseConv(grid=8, filters=16, initialization=scheme)
    patchwise.build((None, 16, 16, 4))
    assert_drawn_as(patchwise.conv.weights, *EXPECTED_DRAWS[scheme](PATCH_FAN_IN, PATCH_FAN_OUT))
    head = DenseHead(outputs=8, hidden_units=256, initialization=scheme)
    head.build((None, 2, 2, 100))
    assert_drawn_as(head.hidden.weights, *EXPECTED_DRAWS[scheme](400, 256))


def test_config_rejects_unusable_values():
    with pytest.raises(ValueError, match="multiple of 16"):
        jaa_keras.preset("bp4d", crop_size=100)
    with pytest.raises(ValueError, match="region_layer"):
        jaa_keras.preset("bp4d", region_layer="dense")
    with pytest.raises(ValueError, match="initialization"):
        jaa_keras.preset("bp4d", initialization="he")
    with pytest.raises(ValueError, match="feature_stack"):
        jaa_keras.preset("bp4d", feature_stack="pytorch")
    with pytest.raises(ValueError, match="no attention centre rule for AU \\[5\\]"):
        jaa_keras.build_jaanet("bp4d", aus=(1, 5), **TINY)


# -- initial attention maps (docs/network.md) ------------------------------------------------

def face_with_au1_centres(left, right, ruler=40.0):
    """Landmarks (crop pixels) whose AU 1 centres land exactly on `left` and `right` (x, y)."""
    points = np.full((NUM_LANDMARKS, 2), 88.0, np.float32)
    points[22] = (68.0, 80.0)
    points[25] = (68.0 + ruler, 80.0)  # inner eye corners: ruler = 40
    points[4] = (left[0], left[1] + ruler / 2)  # AU 1 sits half a ruler above points 4 and 5
    points[5] = (right[0], right[1] + ruler / 2)
    return points.reshape(1, -1)


def initial_maps(landmarks, xi=0.56, aus=(1,)):
    layer = InitialAttentionMaps(aus, crop_size=176, map_size=52, target_size=44, zeta=0.14, xi=xi)
    maps, target = layer(landmarks)
    return maps.numpy()[0, ..., 0], target.numpy()[0, ..., 0]


def test_initial_map_is_one_at_the_centre_and_decays_by_one_thirteenth_per_step():
    # 176 crop -> 52 map: x = 88 maps to 26.0, y = 44 to 13.0.
    maps, _ = initial_maps(face_with_au1_centres(left=(88.0, 44.0), right=(88.0, 44.0)))
    assert maps[13, 26] == pytest.approx(1.0)
    assert maps[13, 27] == pytest.approx(1 - 1 / 13)
    assert maps[15, 28] == pytest.approx(1 - 4 / 13)
    assert maps[17, 30] == pytest.approx(1 - 8 / 13)  # corner of the 9 x 9 box
    assert maps[13, 31] == 0 and maps[18, 26] == 0  # outside the box
    assert np.count_nonzero(maps) == 81


def test_overlapping_boxes_take_the_maximum():
    # Centres 3 map pixels apart (x 20 and 23 on the map): the pixel between takes the larger value.
    left, right = (20 * 176 / 52, 44.0), (23 * 176 / 52, 44.0)
    maps, _ = initial_maps(face_with_au1_centres(left, right))
    assert maps[13, 20] == pytest.approx(1.0) and maps[13, 23] == pytest.approx(1.0)
    assert maps[13, 22] == pytest.approx(1 - 1 / 13)  # 2 from the left centre, 1 from the right
    assert maps[13, 21] == pytest.approx(1 - 1 / 13)
    assert np.count_nonzero(maps) == 9 * 12


def test_uniform_ablation_fills_the_box_with_ones():
    maps, _ = initial_maps(face_with_au1_centres((88.0, 44.0), (88.0, 44.0)), xi=0.0)
    assert set(np.unique(maps)) == {0.0, 1.0} and maps.sum() == 81


def test_e_r_target_is_the_nearest_neighbour_resample_of_the_map():
    maps, target = initial_maps(face_with_au1_centres((60.0, 50.0), (120.0, 50.0)))
    index = np.floor(np.arange(44) * 52 / 44).astype(int)
    np.testing.assert_array_equal(target, maps[np.ix_(index, index)])


def test_boxes_are_clipped_at_the_map_border():
    maps, _ = initial_maps(face_with_au1_centres((0.0, 0.0), (173.0, 173.0)))
    assert maps[0, 0] == pytest.approx(1.0) and maps[51, 51] == pytest.approx(1.0)
    assert np.count_nonzero(maps) == 2 * 25  # each centre keeps a 5 x 5 quarter of its box


# -- the grouped form of the region layers computes exactly what a loop over patches computes --

def randomize_statistics(layer, rng):
    for weight in layer.non_trainable_weights:
        weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype(np.float32))


@pytest.mark.parametrize("training", [True, False])
def test_patchwise_conv_equals_a_loop_over_patches_forward_and_backward(training):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 16, 16, 3)), tf.float32)
    upstream = tf.constant(rng.normal(size=(2, 16, 16, 5)), tf.float32)
    layer = PatchwiseConv(grid=4, filters=5)
    layer.build(x.shape)
    randomize_statistics(layer, rng)
    results = []
    for form in (lambda: layer(x, training=training), lambda: patchwise_loop(layer, x, training)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = form()
            loss = tf.reduce_sum(y * upstream)
        results.append((y, *tape.gradient(loss, [x, *layer.trainable_weights])))
    for fast, straightforward in zip(*results):
        np.testing.assert_allclose(fast, straightforward, atol=1e-4)


def test_grouped_au_branches_equal_one_branch_per_au_forward_and_backward():
    rng = np.random.default_rng(6)
    features = tf.constant(rng.normal(size=(3, 8, 8, 8)), tf.float32)
    landmarks = tf.constant(rng.uniform(8, 24, size=(3, 2 * NUM_LANDMARKS)), tf.float32)
    attention = AdaptiveAttention((1, 4, 12), crop_size=32, width_unit=1, zeta=0.14, xi=0.56,
                                  enhancement=None)
    attention(features, landmarks)
    for weight in attention.trainable_weights:  # every group different, so a mix-up shows
        weight.assign(rng.normal(0, 0.3, weight.shape).astype(np.float32))
    maps, _ = attention.initial_maps(landmarks)
    upstream = tf.constant(rng.normal(size=(3, 1, 1, 20)), tf.float32)

    def grouped():
        outputs = attention(features, landmarks, training=True)
        return outputs["attention"], outputs["local"]

    results = []
    for form in (grouped, lambda: au_branches_loop(attention, maps, features)):
        with tf.GradientTape() as tape:
            tape.watch(features)
            refined, local = form()
            loss = tf.reduce_sum(local * upstream) + tf.reduce_sum(tf.square(refined))
        results.append((refined, local,
                        *tape.gradient(loss, [features, *attention.trainable_weights])))
    for fast, straightforward in zip(*results):
        np.testing.assert_allclose(fast, straightforward, rtol=1e-4, atol=1e-4)



GRAPH_CALL_WITHOUT_ONEDNN = """
import numpy as np, tensorflow as tf
from jaa_keras.layers import PatchwiseConv
x = tf.constant(np.random.default_rng(1).normal(size=(2, 16, 16, 3)), tf.float32)
layer = PatchwiseConv(grid=4, filters=5)
layer.build(x.shape)
graph = tf.function(lambda images: layer(images, training=False))
np.testing.assert_allclose(graph(x), layer(x, training=False), atol=1e-5)
"""


def test_patchwise_conv_runs_in_a_graph_without_onednn_as_tf_serving_may():
    # Keras adds a conv bias with BiasAdd, which TensorFlow's graph optimiser fuses into a conv
    # kernel that refuses groups when oneDNN is off (TF's default on AMD EPYC): every predict and
    # every served request failed there.
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", GRAPH_CALL_WITHOUT_ONEDNN], env=env, cwd=REPO,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]

# -- gradient enhancement (paper Eq. 5) --------------------------------------------------------

def attention_pair():
    """Two attention modules with identical weights, with and without enhancement (lambda3 = 2)."""
    rng = np.random.default_rng(3)
    features = tf.constant(rng.normal(size=(2, 8, 8, 8)), tf.float32)
    landmarks = tf.constant(rng.uniform(8, 24, size=(2, 2 * NUM_LANDMARKS)), tf.float32)
    kwargs = dict(aus=(1, 12), crop_size=32, width_unit=1, zeta=0.14, xi=0.56)
    modules = [AdaptiveAttention(enhancement=factor, **kwargs) for factor in (2.0, None)]
    for module in modules:
        module(features, landmarks)
    modules[1].set_weights(modules[0].get_weights())
    return modules, features, landmarks


def refinement_gradients(module, features, landmarks, objective):
    with tf.GradientTape() as tape:
        loss = objective(module(features, landmarks, training=True))
    return tape.gradient(loss, module.refine.trainable_weights)


def test_enhancement_doubles_exactly_the_au_loss_gradient_reaching_the_maps():
    (enhanced, plain), features, landmarks = attention_pair()
    weights = tf.constant(np.random.default_rng(4).normal(size=(2, 1, 1, 20)), tf.float32)  # 20c
    au_objective = lambda outputs: tf.reduce_sum(outputs["local"] * weights)  # noqa: E731
    for g2, g1 in zip(refinement_gradients(enhanced, features, landmarks, au_objective),
                      refinement_gradients(plain, features, landmarks, au_objective)):
        assert np.any(g1.numpy() != 0)
        np.testing.assert_array_equal(g2.numpy(), 2.0 * g1.numpy())


def test_enhancement_leaves_the_refinement_loss_gradient_unchanged():
    (enhanced, plain), features, landmarks = attention_pair()
    refine_objective = lambda outputs: attention_refine_loss(  # noqa: E731
        outputs["attention_initial"], outputs["attention_logit"])
    for g2, g1 in zip(refinement_gradients(enhanced, features, landmarks, refine_objective),
                      refinement_gradients(plain, features, landmarks, refine_objective)):
        assert np.any(g1.numpy() != 0)
        np.testing.assert_array_equal(g2.numpy(), g1.numpy())


# -- saving and training -----------------------------------------------------------------------

@pytest.mark.parametrize("overrides", [{}, dict(region_layer="region", attention_refinement=False,
                                                initial_attention="uniform", local_merge="mean",
                                                feature_stack="caffe", initialization="pytorch")])
def test_keras_file_round_trip_gives_identical_outputs(tmp_path, overrides):
    model = jaa_keras.build_jaanet("disfa", **TINY, **overrides)
    images = np.random.default_rng(5).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert restored.config.to_dict() == model.config.to_dict()
    for key, value in model(images, training=False).items():
        np.testing.assert_array_equal(restored(images, training=False)[key], value)


def test_a_model_saved_before_the_initialization_and_stack_fields_loads(tmp_path):
    model = jaa_keras.build_jaanet("disfa", **TINY, initialization="keras")
    path = tmp_path / "old model.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:  # rewrite it as saved before the fields existed
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    del config["config"]["config"]["initialization"]
    del config["config"]["config"]["feature_stack"]
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    restored = keras.models.load_model(path)
    assert restored.config.initialization == "keras"  # what drew the weights of such models
    assert restored.config.feature_stack == "paper"   # the only stacks there were
    images = np.random.default_rng(8).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(restored(images)["landmarks"], model(images)["landmarks"])


# -- mixed precision ---------------------------------------------------------------------------

def _built_under_mixed_bfloat16():
    """A tiny JAA-Net built while mixed_bfloat16 is the global policy (as the trainer builds it)."""
    with global_dtype_policy("mixed_bfloat16"):
        return jaa_keras.build_jaanet("bp4d", **TINY)


def test_heads_and_maps_stay_float32_under_mixed_bfloat16():
    full = jaa_keras.build_jaanet("bp4d", **TINY)
    # A landmark of 123.37 px (bfloat16 steps by 0.5 there) and AU log-odds near 8, where
    # P = 0.99966 (bfloat16 rounds it to 1.0).
    full.alignment_head.output_layer.bias.assign(np.full(2 * NUM_LANDMARKS, 123.37, np.float32))
    full.au_head.output_layer.bias.assign(np.repeat([0.0, 8.0], 12).astype(np.float32))
    mixed = _built_under_mixed_bfloat16()
    mixed.set_weights(full.get_weights())
    images = np.random.default_rng(9).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    expected, outputs = full(images), mixed(images)
    assert mixed.region1.entry.compute_dtype == "bfloat16"  # the body does run in bfloat16
    for key in ("au_probability", "au_logit", "landmarks", "attention", "attention_logit"):
        assert outputs[key].dtype == tf.float32, key
    np.testing.assert_allclose(outputs["landmarks"], expected["landmarks"], atol=0.02)
    np.testing.assert_allclose(outputs["au_probability"], expected["au_probability"], atol=2e-5)
    assert np.all(outputs["au_probability"].numpy() < 1.0)


def test_a_mixed_precision_model_stays_mixed_through_its_config_and_a_saved_file(tmp_path):
    mixed = _built_under_mixed_bfloat16()
    mixed.save(tmp_path / "mixed.keras")
    # Rebuilt under the float32 default policy: from its config, and from the saved file.
    for restored in (type(mixed).from_config(mixed.get_config()),
                     keras.models.load_model(tmp_path / "mixed.keras")):
        assert restored.dtype_policy.name == "mixed_bfloat16"
        assert restored.region1.entry.compute_dtype == "bfloat16"
        assert restored.au_head.compute_dtype == "float32"


def test_a_training_step_reduces_the_loss_and_reports_its_parts():
    model = jaa_keras.build_jaanet("bp4d", **TINY)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  objective=JaaNetLoss(model.config, lambda_refine=1e-4))
    rng = np.random.default_rng(6)
    images = rng.uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32)
    targets = {"au": rng.integers(-1, 2, (8, 12)),
               "landmarks": rng.uniform(8, 24, (8, 98)).astype(np.float32),
               "inter_ocular": np.full(8, 10.0, np.float32)}
    history = model.fit(images, targets, batch_size=8, epochs=5, verbose=0).history
    assert {"loss", "au_softmax", "au_dice", "align", "refine", "f1", "landmark_error"} <= set(history)
    assert history["loss"][-1] < history["loss"][0]


# -- DISFA from BP4D (docs/data.md) ---------------------------------------------------------

def test_disfa_model_is_seeded_from_bp4d_branches_as_the_authors_map_them():
    from jaa_keras.transfer import DISFA_FROM_BP4D, transfer_weights
    bp4d = jaa_keras.build_jaanet("bp4d", **TINY)
    disfa = jaa_keras.build_jaanet("disfa", **TINY)
    fresh_head = [w.numpy().copy() for w in disfa.au_head.weights]
    seeded = transfer_weights(bp4d, disfa, DISFA_FROM_BP4D)
    assert seeded == [1, 2, 4, 6, 12, 25, 26]  # every DISFA AU but 9
    images = np.random.default_rng(7).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(disfa(images)["landmarks"], bp4d(images)["landmarks"], atol=1e-5)
    source_maps, target_maps = bp4d(images)["attention"], disfa(images)["attention"]
    for au, source_au in DISFA_FROM_BP4D.items():  # refined maps depend only on the AU's own branch
        np.testing.assert_allclose(target_maps[..., disfa.config.aus.index(au)],
                                   source_maps[..., bp4d.config.aus.index(source_au)], atol=1e-5)
    for before, after in zip(fresh_head, disfa.au_head.weights):
        np.testing.assert_array_equal(before, after.numpy())
