"""The train stage: schedules, coupled weight decay, checkpoints, exact resume, NaN stop, transfer."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from components.base import STARTED_FILE, Artifact, UserError, run_stage
from components.train.component import TRAIN
from components.train.schedule import CoupledDecaySGD, build_schedule, learning_rate
from schemas.face import AU_SETS
from tests._processes import kill_once_exists
from tests._tiny_records import (draw_example, write_manifest, write_records,
                                  write_tiny_dataset)

REPO = Path(__file__).resolve().parents[3]
TINY = {"width_unit": 1, "crop_size": 32, "hidden_units": 16}


def _params(**kw):
    params = dict(dataset="synthetic", fold=1, preset="synthetic", model_overrides=TINY,
                  epochs=[1, 1, 1], batch_size=6, verbose=0, shuffle_buffer=64)
    params.update(kw)
    return params


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("examples"), per_part=12)


def _weights(path):
    import keras
    model = keras.models.load_model(path, compile=False)
    return model, [np.asarray(w) for w in model.weights]


# -- schedule and optimiser --------------------------------------------------------------------
def test_paper_and_joint_schedules():
    paper = build_schedule("paper", "bp4d")
    assert [(p.name, p.epochs, p.learning_rate, p.lambda_align) for p in paper] == [
        ("all", 8, 0.01, 0.5), ("alignment", 2, 0.001, 1.0), ("au", 2, 0.001, None)]
    assert paper[1].modules == ("alignment",)
    assert set(paper[2].modules) == {"global", "attention", "au_head"}
    assert build_schedule("paper", "disfa")[0].learning_rate == 0.001
    (joint,) = build_schedule("joint", "bp4d")
    assert (joint.epochs, joint.learning_rate, joint.nesterov, joint.keep_best) == (12, 0.01, True, True)
    assert [learning_rate(paper[0], e) for e in range(5)] == pytest.approx(
        [0.01, 0.01, 0.003, 0.003, 0.0009])
    short = build_schedule("paper", "bp4d", epochs=[3, 0, 1], learning_rates=[0.1])
    assert [(p.name, p.epochs, p.learning_rate) for p in short] == [("all", 3, 0.1), ("au", 1, 0.1)]
    with pytest.raises(UserError, match="one per phase"):
        build_schedule("paper", "bp4d", epochs=[1, 2])


def test_weight_decay_is_coupled_like_caffe():
    """Caffe: v = m v + lr (g + wd w); w -= v. The decay goes through the momentum."""
    import keras
    w0, lr, m, wd = 2.0, 0.1, 0.9, 0.5
    var = keras.Variable(np.array([w0], np.float32))
    opt = CoupledDecaySGD(learning_rate=lr, momentum=m, l2_decay=wd)
    w, v = w0, 0.0
    for _ in range(3):
        opt.apply_gradients([(keras.ops.zeros((1,)), var)])
        v = m * v + lr * (0.0 + wd * w)
        w = w - v
        np.testing.assert_allclose(var.numpy(), [w], rtol=1e-6)
    assert abs(w - w0 * (1 - lr * wd) ** 3) > 1e-3  # differs from decoupled (no momentum) decay
    assert CoupledDecaySGD.from_config(opt.get_config()).l2_decay == wd


def test_paper_schedule_steps_like_the_caffe_solver():
    """Caffe, per parameter: h' = m h + lr * lr_mult * (g + decay * decay_mult * w);
    w -= (1 + m) h' - m h (Nesterov). Biases: lr_mult 2, decay_mult 0; kernels: 1 and 1."""
    import keras
    import tensorflow as tf
    from components.train.schedule import optimizer_for
    lr, m, wd = 0.1, 0.9, 0.05
    layer = keras.layers.Dense(2, bias_initializer="ones")
    x = np.array([[1.0, -2.0, 0.5]], np.float32)
    layer.build(x.shape)
    paper = build_schedule("paper", "bp4d", learning_rates=[lr])
    assert all(p.nesterov and p.bias_lr_multiplier == 2 and not p.decay_biases for p in paper)
    (joint,) = build_schedule("joint", "bp4d")
    assert joint.bias_lr_multiplier == 1 and joint.decay_biases
    opt = optimizer_for(paper[0], momentum=m, weight_decay=wd)
    expected = {"kernel": (1.0, 1.0), "bias": (2.0, 0.0)}  # (lr_mult, decay_mult)
    weights = {v.name: np.asarray(v) for v in layer.weights}
    history = {name: np.zeros_like(w) for name, w in weights.items()}
    for _ in range(2):  # the second step carries momentum
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x) ** 2)
        grads = tape.gradient(loss, layer.trainable_variables)
        opt.apply_gradients(zip(grads, layer.trainable_variables))
        for variable, g in zip(layer.trainable_variables, grads):
            lr_mult, decay_mult = expected[variable.name]
            w, h = weights[variable.name], history[variable.name]
            new_h = m * h + lr * lr_mult * (np.asarray(g) + wd * decay_mult * w)
            weights[variable.name] = w - ((1 + m) * new_h - m * h)
            history[variable.name] = new_h
            np.testing.assert_allclose(variable.numpy(), weights[variable.name], rtol=1e-5,
                                       err_msg=variable.name)
    restored = type(opt).from_config(opt.get_config())
    assert (restored.bias_lr_multiplier, restored.decay_biases, restored.nesterov) == (2, False, True)


# -- training ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_train_stage_writes_its_artifact_skips_and_freezes(examples, tmp_path):
    out = tmp_path / "fold1"
    result = run_stage(TRAIN, inputs={"examples": examples}, outputs={"model": out},
                       parameters=_params(), log=None)
    assert result.status == "ran"
    for name in ("model.keras", "history.json", "_COMPLETE.json"):
        assert (out / name).is_file(), name
    assert {"train", "attention"} <= {p.name for p in (out / "logs").iterdir()}  # TensorBoard
    history = json.loads((out / "history.json").read_text())
    assert [h["phase"] for h in history] == ["all", "alignment", "au"]
    assert all(np.isfinite(h["loss"]) for h in history)
    summary = Artifact(out).summary
    assert summary["train_parts"] == [2, 3] and summary["epochs"] == 3
    assert len(summary["au_weights"]) == 12
    # Same inputs and parameters: skipped; verbosity is not a cache parameter.
    again = run_stage(TRAIN, inputs={"examples": examples}, outputs={"model": out},
                      parameters=_params(verbose=1), log=None)
    assert again.status == "skipped"
    # Phase 2 trained only the alignment module, phase 3 only global + attention + AU head.
    import keras
    from components.train.trainer import load_checkpoint_weights
    from jaa_keras import build_jaanet, preset
    ckpts = sorted((out / "checkpoints").iterdir())
    assert [c.name for c in ckpts] == ["epoch-002", "epoch-003"]  # keep_checkpoints = 2
    model = build_jaanet(preset("bp4d", **TINY))
    load_checkpoint_weights(model, ckpts[0])
    after_alignment = {m: [np.asarray(w) for l in model.module_layers(m) for w in l.weights]
                       for m in ("region", "alignment", "global", "attention", "au_head")}
    final = keras.models.load_model(out / "model.keras", compile=False)
    for module, before in after_alignment.items():
        now = [np.asarray(w) for l in final.module_layers(module) for w in l.weights]
        same = all(np.array_equal(a, b) for a, b in zip(before, now))
        assert same == (module in ("region", "alignment")), module


def test_mixed_precision_trains_on_a_cpu(examples, tmp_path, caplog):
    # bfloat16 on a CPU: TensorFlow has no gradient for a bfloat16 grouped convolution there, so
    # this stopped at the first step ("Gradients for grouped convolutions are not supported").
    # It runs, and the user is told that on a CPU it is slower than float32.
    out = tmp_path / "model"
    run_stage(TRAIN, inputs={"examples": examples}, outputs={"model": out},
              parameters=_params(epochs=[1, 0, 0], mixed_precision=True), log=None)
    assert "slower than float32 on a CPU" in caplog.text
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
    _, weights = _weights(out / "model.keras")
    assert all(np.all(np.isfinite(w)) for w in weights)


def test_float16_step_on_a_gpu_policy_moves_the_weights_as_float32_does(examples):
    # On a GPU --mixed_precision is float16, whose gradients need loss scaling: Keras wraps the
    # optimiser when the model is compiled, the training step scales the loss and the wrapper
    # unscales the gradients. Forgetting either side (a custom train step, an optimiser that
    # bypasses the wrapper) would move the weights 128x too far or too little here. No GPU in CI,
    # so the GPU's policy runs on the CPU, one step of the trainer's optimiser and loss.
    import keras
    from components.train import input_pipeline as ip
    from components.train.executor import model_config_for
    from components.train.schedule import optimizer_for
    from jaa_keras import build_jaanet
    from jaa_keras.losses import JaaNetLoss
    from jaa_keras.model import global_dtype_policy
    config = model_config_for("synthetic", "synthetic", TINY)
    images, labels = next(iter(ip.make_dataset(ip.part_files(examples, [2, 3]), config.num_aus,
                                               config.crop_size, training=False, batch_size=8)))
    phase = build_schedule("paper", "synthetic")[0]
    keras.utils.set_random_seed(0)   # the same weights whatever ran before in this process
    steps = {}
    for policy in ("float32", "mixed_float16"):
        with global_dtype_policy(policy):
            model = build_jaanet(config)
            if policy == "float32":
                start = model.get_weights()
            model.set_weights(start)
            model.compile(optimizer=optimizer_for(phase),
                          objective=JaaNetLoss(config, np.ones(config.num_aus, np.float32)))
            if policy == "mixed_float16":
                assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
                # Small enough not to overflow float16 on the first step (from 2^15 it would
                # skip steps, halving the scale each time, as it is meant to).
                model.optimizer.dynamic_scale.assign(128.0)
            model.train_on_batch(images, labels)
            steps[policy] = {v.path: np.asarray(v) - w for v, w in zip(model.weights, start)
                             if v.trainable}
    single, half = steps["float32"], steps["mixed_float16"]

    def agreement(names):
        a = np.concatenate([single[n].ravel() for n in names])
        b = np.concatenate([half[n].ravel() for n in names])
        size_a, size_b = np.linalg.norm(a), np.linalg.norm(b)
        return a @ b / (size_a * size_b), size_b / size_a

    # float16 rounding turns and resizes the step a little (over four seeds' initial weights:
    # cosine 0.97-1.00, size ratio 0.94-1.13, the refinement kernels the farthest); a scaling
    # mistake changes its size 128-fold.
    for names in (list(single), *([n for n in single if f"/{head}/" in n and "kernel" in n]
                                   for head in ("au_head", "alignment_head", "attention/refine"))):
        cosine, ratio = agreement(names)
        assert cosine > 0.9 and 0.75 < ratio < 1.33, (names[0], cosine, ratio)


KILLED_RUN = textwrap.dedent("""
    import sys
    from components.base import run_stage
    from components.train.component import TRAIN
    params = dict(dataset="synthetic", fold=1, preset="synthetic",
                  model_overrides={"width_unit": 1, "crop_size": 32, "hidden_units": 16},
                  epochs=[4, 0, 0], batch_size=6, verbose=0, shuffle_buffer=64,
                  learning_rates=[0.05, 0.01, 0.01], lr_decay_every=1)
    run_stage(TRAIN, inputs={"examples": sys.argv[1]}, outputs={"model": sys.argv[2]},
              parameters=params, log=None)
""")


@pytest.mark.slow
def test_killed_run_resumes_and_ends_where_an_uninterrupted_run_ends(examples, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(KILLED_RUN)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    # The killed run: SIGKILL as soon as the first epoch's checkpoint is complete.
    kill_once_exists(killed / "checkpoints" / "epoch-001" / "state.json",
                     [sys.executable, str(script), str(examples), str(killed)], cwd=REPO, env=env)
    assert not (killed / "model.keras").exists() and (killed / STARTED_FILE).exists()
    assert not Artifact(killed).is_complete()
    # Restart: continues from its checkpoint. Then an uninterrupted run for comparison.
    subprocess.run([sys.executable, str(script), str(examples), str(killed)], env=env, cwd=REPO,
                   check=True)
    run_stage(TRAIN, inputs={"examples": examples}, outputs={"model": straight},
              parameters=_params(epochs=[4, 0, 0], learning_rates=[0.05, 0.01, 0.01],
                                 lr_decay_every=1), log=None)
    history = json.loads((killed / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert Artifact(killed).summary["epochs_run_now"] < 4  # it did resume
    assert [h["learning_rate"] for h in history] == pytest.approx([0.05, 0.015, 0.0045, 0.00135])
    _, resumed = _weights(killed / "model.keras")
    _, uninterrupted = _weights(straight / "model.keras")
    for a, b in zip(resumed, uninterrupted):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    straight_history = json.loads((straight / "history.json").read_text())
    np.testing.assert_allclose([h["loss"] for h in history],
                               [h["loss"] for h in straight_history], rtol=1e-4)


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint_and_a_corrupt_one_is_named(
        examples, tmp_path):
    out = tmp_path / "fold1"
    # lr 0.01 in epoch 1 (phase "all"), then 1e30 in phase "alignment": NaN in epoch 2.
    nan_params = _params(epochs=[1, 2, 0], learning_rates=[0.01, 1e30, 0.01])
    with pytest.raises(UserError, match=r"NaN in epoch 2.*last good checkpoint is .*epoch-001"):
        run_stage(TRAIN, inputs={"examples": examples}, outputs={"model": out},
                  parameters=nan_params, log=None)
    assert (out / "checkpoints" / "epoch-001" / "state.json").is_file()
    assert not (out / "checkpoints" / "epoch-002").exists()
    assert not (out / "model.keras").exists() and not Artifact(out).is_complete()
    # Running again resumes from epoch-001; a corrupt checkpoint there is named in the error.
    weights = out / "checkpoints" / "epoch-001" / "weights.npz"
    weights.write_bytes(b"not an h5 file")
    with pytest.raises(UserError, match=r"checkpoint .*epoch-001.*weights.npz cannot be read"):
        run_stage(TRAIN, inputs={"examples": examples}, outputs={"model": out},
                  parameters=nan_params, log=None)


@pytest.mark.slow
def test_joint_schedule_keeps_the_best_epoch_on_held_out_training_subjects(examples, tmp_path):
    from components.train.trainer import validation_subjects
    held_out = validation_subjects(examples, [2, 3], 10, 0)
    assert len(held_out) == 1 and held_out[0] in {"S20", "S21", "S30", "S31"}
    out = tmp_path / "fold1"
    run_stage(TRAIN, inputs={"examples": examples}, outputs={"model": out},
              parameters=_params(schedule="joint", epochs=[2]), log=None)
    history = json.loads((out / "history.json").read_text())
    assert [h["phase"] for h in history] == ["joint", "joint"]
    assert all("val_f1" in h and "val_landmark_error" in h for h in history)
    assert (out / "logs" / "validation").is_dir()
    summary = Artifact(out).summary
    assert summary["best_epoch"] in (1, 2) and summary["schedule"][0]["nesterov"]
    best = f"epoch-{summary['best_epoch']:03d}"
    assert (out / "checkpoints" / best).is_dir()


def test_a_corrupt_record_is_named_not_a_data_loss_traceback(examples, tmp_path):
    copy = tmp_path / "examples"
    shutil.copytree(examples, copy)
    damaged = copy / "part3" / "data-00000-of-00001.tfrecord.gz"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF                      # same size: only the checksum tells
    damaged.write_bytes(bytes(data))
    with pytest.raises(UserError, match="differs from .*manifest.json") as error:
        run_stage(TRAIN, inputs={"examples": copy}, outputs={"model": tmp_path / "fold1"},
                  parameters=_params(epochs=[1, 0, 0]), log=None)
    assert str(damaged) in str(error.value)


@pytest.mark.slow
def test_a_non_finite_loss_names_the_records_of_its_batch(tmp_path):
    examples = write_tiny_dataset(tmp_path / "examples", per_part=6)
    damaged = np.full((49, 2), 1e20, np.float32)        # its squared landmark error overflows
    write_records(examples / "part2" / "late-00000-of-00001.tfrecord.gz",
                  [draw_example(damaged, np.zeros(12), subject="S20", task="T7", frame=4242)])
    manifest = json.loads((examples / "manifest.json").read_text())
    write_manifest(examples, {"subjects": manifest["subjects"]})
    with pytest.raises(UserError, match=r"NaN in epoch 1 .* Records \(subject task #frame\) of "
                                        r"batch \d: ") as error:
        run_stage(TRAIN, inputs={"examples": examples}, outputs={"model": tmp_path / "fold1"},
                  parameters=_params(epochs=[1, 0, 0]), log=None)
    message = str(error.value)
    bad_batch = message.split("Records (subject task #frame) of batch ")[1].split(":")[0]
    named = message.split(f"batch {bad_batch}: ")[1].split(" and of batch")[0].rstrip(".")
    assert "S20 T7 #4242" in named.split(", ")                 # in the batch whose loss broke
    assert 1 <= len(named.split(", ")) <= 6                    # that batch, batch_size 6
    assert message.count("S20 T7 #4242") == 1


def test_missing_or_foreign_stats_are_clear_errors(tmp_path):
    from components.train.trainer import au_weights_for_fold
    from schemas.face import AU_SETS
    with pytest.raises(UserError, match=r"stats.json is missing"):
        au_weights_for_fold(tmp_path, 1, AU_SETS["bp4d"])
    (tmp_path / "stats.json").write_text(json.dumps({"aus": ["AU01"], "splits": {}}))
    with pytest.raises(UserError, match=r"stats.json describes AUs"):
        au_weights_for_fold(tmp_path, 1, AU_SETS["bp4d"])
    names = [f"AU{a:02d}" for a in AU_SETS["bp4d"]]
    (tmp_path / "stats.json").write_text(json.dumps({"aus": names, "splits": {}}))
    with pytest.raises(UserError, match=r"no AU weights .* fold 2"):
        au_weights_for_fold(tmp_path, 2, AU_SETS["bp4d"])


def test_incomplete_examples_or_other_dataset_are_refused(examples, tmp_path):
    from components.base import IncompleteArtifactError
    with pytest.raises(IncompleteArtifactError, match="nowhere"):
        run_stage(TRAIN, inputs={"examples": tmp_path / "nowhere"},
                  outputs={"model": tmp_path / "m"}, parameters=_params(), log=None)
    with pytest.raises(UserError, match=r"holds the 'synthetic' dataset"):
        run_stage(TRAIN, inputs={"examples": examples}, outputs={"model": tmp_path / "m"},
                  parameters=_params(dataset="bp4d"), log=None)


# -- DISFA from BP4D ---------------------------------------------------------------------------
def test_disfa_is_seeded_from_bp4d_as_the_authors_map_it():
    from components.train.transfer import seed_from
    from jaa_keras import build_jaanet
    bp4d = build_jaanet("bp4d", **TINY)
    disfa = build_jaanet("disfa", **TINY)
    fresh = build_jaanet("disfa", **TINY)
    fresh.set_weights(disfa.get_weights())
    done = seed_from(bp4d, disfa)
    assert done["aus"] == {"AU01": "AU01", "AU02": "AU02", "AU04": "AU04", "AU06": "AU06",
                           "AU12": "AU12", "AU25": "AU23", "AU26": "AU17"}
    assert done["fresh"] == ["AU09", "au_head"]
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    src, dst, old = (m(images, training=False) for m in (bp4d, disfa, fresh))
    # Region + alignment copied: same landmarks, hence the same initial maps for shared rules.
    np.testing.assert_allclose(dst["landmarks"], src["landmarks"], rtol=1e-5, atol=1e-5)
    b_aus, d_aus = list(bp4d.config.aus), list(disfa.config.aus)
    for target, source in done["aus"].items():
        t, s = d_aus.index(int(target[2:])), b_aus.index(int(source[2:]))
        np.testing.assert_allclose(dst["attention"][..., t], src["attention"][..., s],
                                   rtol=1e-5, atol=1e-6)
    # AU 9's branch keeps its fresh weights (its refined map = the fresh model's map for the
    # same initial map, which depends only on the copied landmarks) and the head stays fresh.
    for w_new, w_old in zip(disfa.module_layers("au_head")[0].weights,
                            fresh.module_layers("au_head")[0].weights):
        np.testing.assert_array_equal(np.asarray(w_new), np.asarray(w_old))
    for w_new, w_old in zip(disfa.attention.au_weights(9), fresh.attention.au_weights(9)):
        np.testing.assert_array_equal(w_new, w_old)


def test_disfa_without_init_from_warns_that_the_paper_starts_from_bp4d(tmp_path, caplog):
    from components.base import write_completion_record
    from tests._tiny_records import train_artifact
    disfa = write_tiny_dataset(tmp_path / "disfa examples", per_part=2, aus=AU_SETS["disfa"])
    write_completion_record(disfa, stage="preprocess", parameters={"dataset": "disfa"},
                            identity={"dataset": "disfa"})
    # The warning comes first; a crop the network cannot take then stops the run cheaply.
    stop_early = _params(dataset="disfa", model_overrides={**TINY, "crop_size": 50})
    with pytest.raises(UserError, match="crop_size"):
        run_stage(TRAIN, inputs={"examples": disfa}, outputs={"model": tmp_path / "m"},
                  parameters=stop_early, log=None)
    assert "training DISFA from scratch" in caplog.text
    caplog.clear()
    (tmp_path / "bp4d.keras").write_bytes(b"never read: the run stops before loading it")
    bp4d = train_artifact(tmp_path / "bp4d fold1", tmp_path / "bp4d.keras", dataset="bp4d")
    with pytest.raises(UserError, match="crop_size"):
        run_stage(TRAIN, inputs={"examples": disfa, "init_from": bp4d},
                  outputs={"model": tmp_path / "m2"}, parameters=stop_early, log=None)
    assert "from scratch" not in caplog.text


def test_seeding_from_an_unrelated_or_misshaped_model_is_a_clear_error():
    from components.train.transfer import seed_from
    from jaa_keras import build_jaanet
    with pytest.raises(UserError, match="another width, crop"):
        seed_from(build_jaanet("bp4d", **{**TINY, "width_unit": 2}), build_jaanet("disfa", **TINY),
                  "models/bp4d/fold1")
