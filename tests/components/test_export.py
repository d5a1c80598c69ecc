"""The Export stage: TF Serving layout, both signatures equal the Keras model, REST bodies,
warm-up requests, model card, versions, bad input."""
import base64
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from components.base import ArtifactMismatchError, UserError, write_completion_record
from components.export import component as export_component
from components.export import rest
from components.export.component import best_fold, latest_export, read_card_metadata, run_export
from components.export.warmup import WARMUP_FILE, read_warmup_file
from components.train.input_pipeline import crop_landmarks_to_aligned, make_dataset, part_files
from schemas.example import parse_examples
from schemas.face import AU_SETS, au_names
from tests._tiny_records import train_artifact
from tests.conftest import TINY_CROP as CROP

AUS = AU_SETS["bp4d"]


@pytest.fixture(scope="module")
def records(exported):
    """Part 1's serialized examples, their decoded faces, and the Keras model's outputs on the
    evaluation input pipeline (centre crop, [-1, 1]) mapped to the aligned frame: the reference."""
    files = part_files(exported["examples"], [1])
    serialized = [r.numpy() for r in tf.data.TFRecordDataset([str(f) for f in files], "GZIP")]
    faces = parse_examples(tf.constant(serialized), len(AUS))["image"].numpy()
    images, _ = next(iter(make_dataset(files, len(AUS), CROP, training=False, batch_size=64)))
    output = exported["model"](images, training=False)
    expected = {"au_probability": output["au_probability"].numpy(),
                "landmarks": crop_landmarks_to_aligned(output["landmarks"], CROP).numpy()}
    expected["au_present"] = (expected["au_probability"] >= 0.5).astype(np.int32)
    return {"serialized": serialized, "faces": faces, "expected": expected}


def _assert_matches(outputs, expected):
    outputs = {k: np.asarray(v) for k, v in outputs.items()}
    assert sorted(outputs) == ["au_present", "au_probability", "landmarks"]
    np.testing.assert_allclose(outputs["au_probability"], expected["au_probability"], atol=1e-5)
    np.testing.assert_allclose(outputs["landmarks"], expected["landmarks"], atol=1e-3)
    # 0/1 at the threshold (a probability within float noise of 0.5 may flip; none here is).
    near = np.abs(expected["au_probability"] - 0.5) < 1e-5
    np.testing.assert_array_equal(outputs["au_present"][~near], expected["au_present"][~near])
    assert outputs["au_present"].dtype == np.int32


def test_tf_serving_layout(exported):
    version = exported["serving"] / "1"
    assert exported["result"].outputs["saved_model"].path == version
    for name in ("saved_model.pb", "variables/variables.index", "_COMPLETE.json",
                 f"assets.extra/{WARMUP_FILE}", "assets.extra/model_card.md", "assets.extra/jaa_net.json"):
        assert (version / name).is_file(), name
    # Nothing but the version folder is visible to TF Serving (the staging folder was renamed).
    assert [p.name for p in exported["serving"].iterdir()] == ["1"]
    assert Path(latest_export(exported["serving"])) == version
    summary = exported["result"].summary
    assert summary["version"] == 1 and summary["aus"] == au_names("bp4d")
    assert max(summary["verify_max_abs_diff"].values()) < 1e-3


def test_both_signatures_equal_the_keras_model(exported, records):
    loaded = exported["loaded"]
    images = loaded.signatures["serving_default"](images=tf.constant(records["faces"]))
    _assert_matches({k: v.numpy() for k, v in images.items()}, records["expected"])
    examples = loaded.signatures["examples"](examples=tf.constant(records["serialized"]))
    _assert_matches({k: v.numpy() for k, v in examples.items()}, records["expected"])


def test_examples_signature_needs_only_the_image(exported, records):
    jpeg = tf.io.encode_jpeg(records["faces"][0], quality=100).numpy()
    example = tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg]))})).SerializeToString()
    out = exported["loaded"].signatures["examples"](examples=tf.constant([example]))
    assert out["au_probability"].shape == (1, len(AUS)) and out["landmarks"].shape == (1, 98)


def test_saved_model_cli_lists_both_signatures(exported):
    cli = Path(sys.executable).with_name("saved_model_cli")
    text = subprocess.run([str(cli), "show", "--all", "--dir", str(exported["serving"] / "1")],
                          capture_output=True, text=True, check=True).stdout
    assert "signature_def['serving_default']" in text and "signature_def['examples']" in text
    assert "inputs['images']" in text and "DT_UINT8" in text and "(-1, 200, 200, 3)" in text
    assert "inputs['examples']" in text and "DT_STRING" in text
    for output in ("au_probability", "au_present", "landmarks"):
        assert f"outputs['{output}']" in text


def test_rest_bodies_give_the_same_result(exported, records):
    """A client's JSON, as TF Serving's REST API takes it, converted to the signature's inputs."""
    loaded = exported["loaded"]
    body = json.loads(json.dumps(rest.images_body(records["faces"][:3])))  # as sent on the wire
    inputs = rest.request_to_inputs(body, loaded.signatures["serving_default"])
    assert inputs["images"].dtype == np.uint8 and inputs["images"].shape == (3, 200, 200, 3)
    reply = rest.predict(loaded, body)
    rows = reply["predictions"]
    assert len(rows) == 3 and sorted(rows[0]) == ["au_present", "au_probability", "landmarks"]
    expected = {k: v[:3] for k, v in records["expected"].items()}
    _assert_matches({k: np.array([r[k] for r in rows]).astype(np.int32 if k == "au_present" else np.float32)
                     for k in rows[0]}, expected)

    body = json.loads(json.dumps(rest.examples_body(records["serialized"][:2])))
    assert base64.b64decode(body["instances"][0]["b64"]) == records["serialized"][0]
    rows = rest.predict(loaded, body)["predictions"]
    _assert_matches({k: np.array([r[k] for r in rows]).astype(np.int32 if k == "au_present" else np.float32)
                     for k in rows[0]}, {k: v[:2] for k, v in records["expected"].items()})

    columnar = rest.predict(loaded, {"inputs": {"images": records["faces"][:1].tolist()}})
    np.testing.assert_allclose(columnar["outputs"]["au_probability"],
                               records["expected"]["au_probability"][:1], atol=1e-5)


def _face_rows(records, count=1):
    return records["faces"][:count].tolist()


# Bodies TF Serving refuses, and words its error reply must carry to say what to send instead.
REFUSED = {
    "normalised floats": (lambda r: {"instances": (r["faces"][:1] / 255.0).tolist()},
                          ["images", "0-255", "decimal point", "[0, 1]-normalised"]),
    "out of range": (lambda r: {"instances": [[[[256, 0, 0]] * 200] * 200]},
                     ["images", "0-255", "256"]),
    "a JSON list": (lambda r: json.dumps([{"instances": _face_rows(r)}]),
                    ["JSON object", "an array"]),
    "not JSON": (lambda r: '{"instances": [', ["not valid JSON"]),
    "unknown signature": (lambda r: {"signature_name": "serving", "instances": _face_rows(r)},
                          ['"serving"', "examples, raw_images, serving_default"]),
    "wrong key, row format": (lambda r: {"instances": [{"image": _face_rows(r)[0]}]},
                              ["instance 0", "['image']", "['images']"]),
    "wrong key, columnar": (lambda r: {"inputs": {"image": _face_rows(r)}},
                            ['"inputs"', "['image']", "['images']"]),
    "both formats": (lambda r: {"instances": _face_rows(r), "inputs": _face_rows(r)},
                     ["not both"]),
    "empty batch, row format": (lambda r: {"instances": []}, ["non-empty"]),
    "empty batch, columnar": (lambda r: {"inputs": {"images": []}}, ["empty"]),
    "wrong image size": (lambda r: {"instances": r["faces"][:1, :100].tolist()},
                         ["(batch, 200, 200, 3)", "(1, 100, 200, 3)"]),
    "examples not strings": (lambda r: {"signature_name": "examples", "instances": [1, 2]},
                             ['"examples"', "strings", "b64"]),
}


@pytest.mark.parametrize("case", REFUSED)
def test_rest_refusals_are_tf_serving_error_replies(exported, records, case):
    make_body, words = REFUSED[case]
    reply = rest.predict(exported["loaded"], make_body(records))
    assert list(reply) == ["error"] and isinstance(reply["error"], str), reply
    for word in words:
        assert word in reply["error"], (word, reply["error"])


def test_warmup_requests_parse_and_replay(exported):
    logs = read_warmup_file(exported["serving"] / "1" / "assets.extra" / WARMUP_FILE)
    assert {log.predict_log.request.model_spec.signature_name for log in logs} == {
        "serving_default", "examples"}
    for log in logs:
        request = log.predict_log.request
        assert log.WhichOneof("log_type") == "predict_log" and request.model_spec.name == "jaa_net"
        inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
        out = exported["loaded"].signatures[request.model_spec.signature_name](**inputs)
        assert out["au_probability"].shape == (1, len(AUS))


def test_model_card(exported):
    version = exported["serving"] / "1"
    card = (version / "assets.extra" / "model_card.md").read_text()
    for text in ("AU01", "AU24", ">= 0.5", "Intended use", "Limits", "synthetic", "not emotion",
                 "No evaluation was available"):
        assert text in card, text
    meta = read_card_metadata(version)
    assert meta["aus"] == au_names("bp4d") and meta["threshold"] == 0.5 and meta["fold"] == 1
    assert meta["network"]["crop_size"] == CROP


def test_card_carries_evaluation_metrics(exported, tmp_path):
    from components.export import model_card
    entry = {"au": {n: {"f1": 0.61, "accuracy": 0.8} for n in au_names("bp4d")}, "mean_f1": 0.61,
             "mean_accuracy": 0.8, "landmark_mean_error": 0.05, "landmark_failure_rate": 0.02}
    evaluation = {"dataset": "synthetic", "folds": {"1": entry}, "mean": {**entry, "folds": [1]}}
    meta = model_card.card_metadata(model=exported["model"], dataset="synthetic", fold=1, version=3,
                                    model_name="jaa_net", threshold=0.5, model_file="m.keras",
                                    evaluation=evaluation, training={"epochs": 2},
                                    data={"train_parts": [2, 3], "test_part": 1, "train_examples": 40,
                                          "train_subjects": ["S2", "S3"]})
    card = model_card.render_card(meta)
    assert "- Training split: parts 2, 3, 40 frames, 2 subjects (S2 S3); held-out test part 1." in card
    assert "| AU01 | 61.0 | 61.0 | 80.0 | 80.0 |" in card and "| Mean error | 5.0 | 5.0 |" in card
    assert meta["metrics"]["this_fold"]["mean_f1"] == 0.61


def test_auxiliary_heads_are_not_exported(exported, records, tmp_path):
    """RTATL's heads train only: a model that has them, with the backbone weights of the tiny
    run's model, exports the same SavedModel (signatures, variables, outputs)."""
    from components.train.transfer import copy_backbone
    from jaa_keras import build_jaanet
    plain = exported["model"]
    with_heads = build_jaanet(plain.config.replace(auxiliary=("inpainting", "flow")))
    assert copy_backbone(plain, with_heads) == ["inpainting_decoder", "flow_head"]
    with_heads.save(tmp_path / "heads.keras")
    folder = train_artifact(tmp_path / "fold1", tmp_path / "heads.keras")
    result = run_export(model=folder, output=tmp_path / "jaa_net", dataset="synthetic", log=None,
                        verify=False)   # the comparison below is the check
    version = result.outputs["saved_model"].path
    heads, reference = tf.saved_model.load(str(version)), exported["loaded"]
    names = lambda loaded: sorted(v.name for v in loaded.variables)  # noqa: E731
    assert names(heads) == names(reference) and not any("head" in n and "au_head" not in n
                                                        for n in names(heads))
    for name in ("serving_default", "examples", "raw_images"):
        ours, theirs = heads.signatures[name], reference.signatures[name]
        assert ours.structured_input_signature == theirs.structured_input_signature, name
        assert ours.structured_outputs == theirs.structured_outputs, name
    faces = tf.constant(records["faces"])
    for key, value in heads.signatures["serving_default"](images=faces).items():
        np.testing.assert_array_equal(
            value, reference.signatures["serving_default"](images=faces)[key], err_msg=key)
    examples = tf.constant(records["serialized"])
    for key, value in heads.signatures["examples"](examples=examples).items():
        np.testing.assert_array_equal(
            value, reference.signatures["examples"](examples=examples)[key], err_msg=key)
    card = (version / "assets.extra" / "model_card.md").read_text()
    assert "auxiliary tasks (inpainting, flow)" in card and "not in this SavedModel" in card


# ------------------------------------------------------------------------------------------------
# Versions: the publishing logic, with a stand-in executor (the SavedModel itself is tested above).


@pytest.fixture
def quick_export(monkeypatch):
    def executor(inputs, outputs, parameters):
        (outputs["saved_model"].path / "saved_model.pb").write_bytes(b"")
        return {"version": parameters["version"]}
    monkeypatch.setattr(export_component, "EXPORT",
                        dataclasses.replace(export_component.EXPORT, executor=executor))


def test_versions_skip_force_and_explicit(exported, tmp_path, quick_export):
    serving = tmp_path / "jaa_net"
    args = dict(model=exported["model_dir"], output=serving, dataset="synthetic", log=None)
    assert run_export(**args).outputs["saved_model"].path == serving / "1"
    skipped = run_export(**args)
    assert skipped.status == "skipped" and skipped.outputs["saved_model"].path == serving / "1"
    assert run_export(**args, force=True).outputs["saved_model"].path == serving / "2"
    changed = run_export(**args, threshold=0.4)  # other parameters: a new version
    assert changed.status == "ran" and changed.outputs["saved_model"].path == serving / "3"
    assert run_export(**args, version=7).outputs["saved_model"].path == serving / "7"
    assert run_export(**args, version=1).status == "skipped"  # same inputs and parameters
    with pytest.raises(UserError, match="already holds another export"):
        run_export(**args, version=1, threshold=0.3)
    assert run_export(**args, version=1, threshold=0.3, force=True).summary["version"] == 1
    assert sorted(p.name for p in serving.iterdir()) == ["1", "2", "3", "7"]


def test_serving_folder_of_another_dataset(exported, tmp_path, quick_export):
    serving = tmp_path / "jaa_net"
    other = tmp_path / "disfa_model"
    train_artifact(other, exported["model_file"], dataset="disfa")
    run_export(model=exported["model_dir"], output=serving, dataset="synthetic", log=None)
    with pytest.raises(ArtifactMismatchError) as error:
        run_export(model=other, output=serving, dataset="disfa", log=None)
    assert str(serving / "1" / "_COMPLETE.json") in str(error.value)
    (serving / "5").mkdir()  # a version folder not written by this pipeline
    with pytest.raises(ArtifactMismatchError, match="not an export of this pipeline"):
        run_export(model=exported["model_dir"], output=serving, dataset="synthetic", log=None)


# ------------------------------------------------------------------------------------------------
# Bad input (the real executor): one clear error naming the file.


def test_model_trained_on_another_au_set(exported, tmp_path):
    examples = tmp_path / "examples"
    shutil.copytree(exported["examples"], examples)
    (examples / "stats.json").write_text(json.dumps({"aus": list(AU_SETS["disfa"])}))
    write_completion_record(examples, stage="preprocess", parameters={"dataset": "synthetic"},
                            identity={"dataset": "synthetic"})
    with pytest.raises(UserError) as error:
        run_export(model=exported["model_dir"], output=tmp_path / "jaa_net", dataset="synthetic",
                   examples=examples, log=None)
    assert str(exported["model_dir"] / "model.keras") in str(error.value)
    assert str(examples / "stats.json") in str(error.value)
    assert not (tmp_path / "jaa_net" / "1").exists()


def test_corrupt_model_file(exported, tmp_path):
    folder = train_artifact(tmp_path / "fold1", exported["model_file"])
    (folder / "model.keras").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(UserError, match="could not be loaded") as error:
        run_export(model=folder, output=tmp_path / "jaa_net", dataset="synthetic", log=None)
    assert str(folder / "model.keras") in str(error.value)


def test_best_fold(tmp_path):
    assert best_fold(None, [3, 2]) == 2
    evaluation = tmp_path / "eval"
    evaluation.mkdir()
    (evaluation / "metrics.json").write_text(json.dumps(
        {"folds": {"1": {"mean_f1": 0.5}, "2": {"mean_f1": 0.7}, "3": {"mean_f1": 0.7}}}))
    assert best_fold(evaluation, [1, 2, 3]) == 1  # incomplete eval folder: not read
    write_completion_record(evaluation, stage="evaluate", parameters={})
    assert best_fold(evaluation, [1, 2, 3]) == 2
    assert best_fold(evaluation, [1]) == 1
