"""RTATL's training interface: the flags and parameters (each reaching the code that uses it,
bad values one clear error), the data of a fold with auxiliary tasks and label_fraction."""
import numpy as np
import pytest

import run_pipeline
from components.base import ParameterError, UserError, run_stage
from components.train import input_pipeline as ip
from components.train.component import TRAIN
from components.train.trainer import TrainingData, validation_subjects
from jaa_keras import preset
from tests._cli import assert_refused
from tests._tiny_records import write_tiny_dataset

TINY = {"width_unit": 1, "crop_size": 32, "hidden_units": 16}


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """12 coded frames a part (flow targets on most), 5 unlabelled a part, 4 outside."""
    return write_tiny_dataset(tmp_path_factory.mktemp("examples"), per_part=12, flow=True,
                              unlabelled=5, outside=4)


def _params(**kw):
    return {"dataset": "synthetic", "fold": 1, "preset": "synthetic", "model_overrides": TINY,
            "epochs": [1, 0, 0], "batch_size": 6, "verbose": 0, "shuffle_buffer": 64, **kw}


# -- flags ------------------------------------------------------------------------------------
def test_the_auxiliary_flags_reach_the_train_stage():
    args = run_pipeline.parse(["--auxiliary", "inpainting,flow", "--auxiliary_ratio", "0.5",
                               "--label_fraction", "0.1", "--inpainting_weight", "2",
                               "--inpainting_patch", "0.2", "--flow_weight", "0.5"])
    params = run_pipeline.train_parameters(args, 1)
    assert (params["auxiliary"], params["auxiliary_ratio"], params["label_fraction"]) == (
        ["inpainting", "flow"], 0.5, 0.1)
    assert params["model_overrides"] == {"inpainting_weight": 2.0, "inpainting_patch": 0.2,
                                         "flow_weight": 0.5}
    resolved = TRAIN.resolve(params)
    assert resolved["auxiliary"] == ["inpainting", "flow"]
    # Off by default, for every preset; label_fraction without the tasks is a plain run on
    # fewer codes.
    defaults = TRAIN.resolve(run_pipeline.train_parameters(run_pipeline.parse([]), 1))
    assert (defaults["auxiliary"], defaults["auxiliary_ratio"], defaults["label_fraction"]) == (
        [], 1.0, 1.0)
    assert run_pipeline.parse(["--label_fraction", "0.5"]).label_fraction == 0.5


REFUSED = {
    "unknown task": (["--auxiliary", "blur"], "--auxiliary: blur is not an auxiliary task "
                                              "(inpainting, flow)"),
    "task twice": (["--auxiliary", "flow,flow"], "--auxiliary: flow,flow names a task twice"),
    "no task": (["--auxiliary", ","], "--auxiliary: ',' lists no value"),
    "zero ratio": (["--auxiliary", "flow", "--auxiliary_ratio", "0"],
                   "--auxiliary_ratio: 0 is not a finite number > 0"),
    "nan ratio": (["--auxiliary", "flow", "--auxiliary_ratio", "nan"],
                  "--auxiliary_ratio: nan is not a finite number > 0"),
    "ratio alone": (["--auxiliary_ratio", "2"], "--auxiliary_ratio applies with --auxiliary only"),
    "no labels": (["--label_fraction", "0"], "--label_fraction: 0 is not a fraction in (0, 1]"),
    "too many labels": (["--label_fraction", "1.5"], "--label_fraction: 1.5 is not a fraction"),
    "negative weight": (["--auxiliary", "inpainting", "--inpainting_weight=-1"],
                        "--inpainting_weight: -1 is not a finite number > 0"),
    "infinite weight": (["--auxiliary", "flow", "--flow_weight", "inf"],
                        "--flow_weight: inf is not a finite number > 0"),
    "zero patch": (["--auxiliary", "inpainting", "--inpainting_patch", "0"],
                   "--inpainting_patch: 0 is not a share of the crop in (0, 1]"),
    "weight of another task": (["--auxiliary", "inpainting", "--flow_weight", "2"],
                               "--flow_weight applies with --auxiliary flow only"),
    "patch without its task": (["--inpainting_patch", "0.2"],
                               "--inpainting_patch applies with --auxiliary inpainting only"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_bad_auxiliary_flags_are_one_parser_error(case, capsys):
    assert_refused(*REFUSED[case], capsys)


@pytest.mark.parametrize("params, error, message", [
    ({"auxiliary": ["blur"]}, ParameterError, "'auxiliary': each value must be an auxiliary task"),
    ({"auxiliary": ["flow", "flow"]}, ParameterError, "['flow', 'flow'] names a task twice"),
    ({"auxiliary_ratio": -1.0}, ParameterError, "'auxiliary_ratio' must be a finite number > 0"),
    ({"label_fraction": 0.0}, ParameterError, "'label_fraction' must be a fraction in (0, 1]"),
    ({"model_overrides": {**TINY, "flow_weight": 2.0}}, UserError,
     "flow_weight applies to the auxiliary task flow, which this run does not train"),
    ({"model_overrides": {**TINY, "auxiliary": ["flow"]}}, UserError,
     "the auxiliary tasks are the train stage's parameter auxiliary"),
])
def test_bad_auxiliary_parameters_from_code_are_one_clear_error(examples, tmp_path, params,
                                                                error, message):
    with pytest.raises(error) as raised:
        run_stage(TRAIN, inputs={"examples": examples}, outputs={"model": tmp_path / "m"},
                  parameters=_params(**params), log=None)
    assert message in str(raised.value)


# -- the data of a fold -----------------------------------------------------------------------
def _data(examples, config, **kw):
    files = ip.part_files(examples, [2, 3])
    settings = dict(files=files, pool=files + ip.unlabelled_files(examples, [2, 3]),
                    batch_size=4, seed=0, shuffle_buffer=64, keep_best=False,
                    validation_buckets=10, log=lambda _: None)
    return TrainingData(examples, [2, 3], config, **{**settings, **kw})


def _records(ds):
    return sorted((s.decode(), int(f)) for _, labels in ds for s, f in zip(
        labels["subject"].numpy(), labels["frame"].numpy()))


def _kept(examples, fraction, seed=0):
    """(subject, frame) of the coded frames of parts 2 and 3 that keep their codes."""
    import tensorflow as tf
    keep = ip.keeps_codes(fraction, seed)
    spec = {"subject": tf.io.FixedLenFeature([], tf.string),
            "frame": tf.io.FixedLenFeature([], tf.int64)}
    kept = []
    for record in tf.data.TFRecordDataset(ip.part_files(examples, [2, 3]), "GZIP"):
        if bool(keep(record)):
            parsed = tf.io.parse_single_example(record, spec)
            kept.append((parsed["subject"].numpy().decode(), int(parsed["frame"])))
    return sorted(kept)


def test_label_fraction_shortens_the_labelled_epoch_and_the_held_out_subjects_obey_it(examples):
    config = preset("bp4d", **TINY)
    full = _data(examples, config)
    assert (full.num_train, full.steps_per_epoch) == (24, 6)
    kept = _kept(examples, 0.5)
    half = _data(examples, config, label_fraction=0.5)
    assert 0 < half.num_train == len(kept) < 24
    assert half.steps_per_epoch == -(-len(kept) // 4)
    assert _records(half.epoch(0, keep_metadata=True)) == kept
    # keep_best: the held-out subjects score the epochs on their kept codes only and train in
    # neither stream.
    held_out = validation_subjects(examples, [2, 3], 10, 0)
    best = _data(examples, config, label_fraction=0.5, keep_best=True)
    scored = ip.make_dataset(ip.part_files(examples, [2, 3]), config.num_aus, 32,
                             training=False, batch_size=64, keep_metadata=True, seed=0,
                             subject_split=("validation", held_out), label_fraction=0.5)
    assert _records(scored) == [r for r in kept if r[0] in held_out] != []
    landmarks = lambda ds: np.concatenate([y["landmarks"] for _, y in ds])  # noqa: E731
    np.testing.assert_array_equal(landmarks(best.validation), landmarks(scored))
    assert _records(best.epoch(0, keep_metadata=True)) == [r for r in kept if r[0] not in held_out]


def test_the_auxiliary_stream_rides_along_the_labelled_batches(examples):
    config = preset("bp4d", **TINY).replace(auxiliary=("flow",))
    data = _data(examples, config, auxiliary_ratio=0.75, label_fraction=0.5)
    batches = list(data.epoch(0))
    assert len(batches) == data.steps_per_epoch
    for x, y in batches:
        assert set(x) == {"images", "auxiliary_images"}
        assert x["auxiliary_images"].shape == (3, 32, 32, 3)       # round(0.75 * 4) a step
        assert {"au", "landmarks", "inter_ocular", "flow", "has_flow"} == set(y)
        assert y["flow"].shape == (3, 8, 8, 2) and y["has_flow"].shape == (3,)
    # The pool: every coded frame of parts 2 and 3 (codes kept or not), their unlabelled frames
    # and the outside ones; its order, a function of (seed, epoch).
    assert data.pool_size == 2 * 12 + 2 * 5 + 4
    assert data.auxiliary_summary() == {"tasks": ["flow"], "batch_size": 3, "pool": 38,
                                        "unlabelled_files": 3}
    again = list(data.epoch(0))
    for (x, y), (x2, y2) in zip(batches, again):
        np.testing.assert_array_equal(x["auxiliary_images"], x2["auxiliary_images"])
        np.testing.assert_array_equal(y["flow"], y2["flow"])


# -- training ---------------------------------------------------------------------------------
def _event_tags(folder):
    import tensorflow as tf
    from tensorflow.core.util import event_pb2
    tags = set()
    for file in folder.glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(file)):
            event = event_pb2.Event.FromString(record.numpy())
            tags.update(value.tag for value in event.summary.value)
    return tags


@pytest.mark.slow
def test_auxiliary_training_records_its_losses_and_a_stopped_run_resumes_exactly(examples,
                                                                                 tmp_path):
    import json
    import shutil

    import keras

    from components.base import COMPLETION_FILE, STARTED_FILE, Artifact
    # The joint schedule: its held-out subject scores the epochs and trains in neither stream.
    params = _params(auxiliary=["inpainting", "flow"], auxiliary_ratio=0.5, label_fraction=0.5,
                     model_overrides={**TINY, "flow_weight": 2.0, "inpainting_patch": 0.2},
                     schedule="joint", epochs=[2], learning_rates=[0.05])
    straight = tmp_path / "straight"
    run_stage(TRAIN, inputs={"examples": examples}, outputs={"model": straight},
              parameters=params, log=None)
    held_out = validation_subjects(examples, [2, 3], 10, 0)
    labelled = [r for r in _kept(examples, 0.5) if r[0] not in held_out]
    history = json.loads((straight / "history.json").read_text())
    assert len(history) == 2
    for entry in history:
        assert entry["inpainting"] > 0 and entry["flow"] > 0 and np.isfinite(entry["loss"])
        assert "val_f1" in entry and "val_flow" not in entry and "val_inpainting" not in entry
        assert entry["steps"] == -(-len(labelled) // 6)   # the labelled epoch
    assert {"epoch_inpainting", "epoch_flow"} <= _event_tags(straight / "logs" / "train")
    assert not {"epoch_flow", "epoch_inpainting"} & _event_tags(straight / "logs" / "validation")
    summary = Artifact(straight).summary
    assert summary["labelled_examples"] == len(labelled)
    pool = ip.part_files(examples, [2, 3]) + ip.unlabelled_files(examples, [2, 3])
    assert summary["auxiliary"] == {
        "tasks": ["inpainting", "flow"], "batch_size": 3, "unlabelled_files": 3,
        "pool": ip.count_examples(pool, ("train", held_out))}
    model = keras.models.load_model(straight / "model.keras", compile=False)
    assert (model.config.auxiliary, model.config.flow_weight, model.config.inpainting_patch,
            model.config.inpainting_weight) == (("inpainting", "flow"), 2.0, 0.2, 1.0)
    # The same run stopped after its first epoch (what a kill leaves: the first checkpoint and
    # the started record), then run again: it resumes and ends where the straight run ended.
    stopped = tmp_path / "stopped"
    shutil.copytree(straight, stopped)
    record = json.loads((stopped / COMPLETION_FILE).read_text())
    for leftover in (COMPLETION_FILE, "model.keras", "history.json"):
        (stopped / leftover).unlink()
    shutil.rmtree(stopped / "checkpoints" / "epoch-002")
    shutil.rmtree(stopped / "logs")
    (stopped / STARTED_FILE).write_text(json.dumps({"stage": "train",
                                                    "cache_key": record["cache_key"]}))
    result = run_stage(TRAIN, inputs={"examples": examples}, outputs={"model": stopped},
                       parameters=params, log=None)
    assert result.status == "ran" and result.summary["epochs_run_now"] == 1
    resumed = keras.models.load_model(stopped / "model.keras", compile=False)
    assert len(resumed.weights) == len(model.weights)
    for a, b in zip(resumed.weights, model.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6,
                                   err_msg=a.path)
    assert json.loads((stopped / "history.json").read_text())[1]["loss"] == pytest.approx(
        history[1]["loss"], rel=1e-5)


def test_a_model_with_auxiliary_heads_seeds_one_without_and_the_reverse():
    from components.train.transfer import seed_from
    from jaa_keras import build_jaanet
    images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    heads = build_jaanet("bp4d", **TINY, auxiliary=("inpainting", "flow"))
    plain = build_jaanet("bp4d", **TINY)
    assert seed_from(heads, plain)["fresh"] == []
    for key, value in heads(images, training=False).items():
        np.testing.assert_array_equal(value, plain(images, training=False)[key], err_msg=key)
    flow_only = build_jaanet("bp4d", **TINY, auxiliary=("flow",))
    before = [np.asarray(w) for w in flow_only.flow_head.weights]
    done = seed_from(plain, flow_only)
    assert done["copied"] == "all" and done["fresh"] == ["flow_head"]   # kept as drawn
    for a, b in zip(before, flow_only.flow_head.weights):
        np.testing.assert_array_equal(a, np.asarray(b))
    assert seed_from(heads, flow_only)["fresh"] == []                     # its head copied too
    np.testing.assert_array_equal(np.asarray(flow_only.flow_head.weights[0]),
                                  np.asarray(heads.flow_head.weights[0]))


def test_the_inpainting_patch_of_the_config_shapes_the_masks(examples):
    def masked_share(patch):
        config = preset("bp4d", **TINY).replace(auxiliary=("inpainting",), inpainting_patch=patch)
        _, y = next(iter(_data(examples, config).epoch(0)))
        return float(np.mean(y["inpainting_mask"]))
    small, large = masked_share(0.1), masked_share(0.4)
    assert 0 < small < large / 4      # squares 4 x wider: 16 x the area where none overlap


def test_the_auxiliary_tasks_train_only_in_phases_that_train_the_region_layers(examples,
                                                                               tmp_path):
    """The paper schedule freezes the region layers after its first phase; the heads would then
    fit frozen features. The alignment and AU phases train on the labelled stream alone, their
    heads frozen (trainable, Keras warned of variables without gradients)."""
    import json
    import warnings
    params = _params(auxiliary=["inpainting", "flow"], epochs=[1, 1, 1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_stage(TRAIN, inputs={"examples": examples}, outputs={"model": tmp_path / "m"},
                  parameters=params, log=None)
    assert not [w for w in caught if "Gradients do not exist" in str(w.message)]
    history = json.loads((tmp_path / "m" / "history.json").read_text())
    assert [entry["phase"] for entry in history] == ["all", "alignment", "au"]
    assert history[0]["inpainting"] > 0 and history[0]["flow"] > 0
    for entry in history[1:]:
        assert "inpainting" not in entry and "flow" not in entry and np.isfinite(entry["loss"])
