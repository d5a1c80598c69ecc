"""Shared test set-up and fixtures."""
# Before any test module imports TensorFlow: jaa_keras sets the environment it must start with
# (oneDNN kernels for the grouped convolutions' gradients on every CPU).
import jaa_keras  # noqa: F401
import pytest

TINY_PER_PART = 8  # examples per part of the shared tiny dataset
# The smallest network: crop 32 (smaller than 176: serving must also resize, as the input
# pipeline does), width unit 1, 16 hidden units in the heads.
TINY_NETWORK = {"width_unit": 1, "crop_size": 32, "hidden_units": 16}
TINY_CROP = TINY_NETWORK["crop_size"]


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory):
    """What the Preprocess and Train stages leave, written once for the evaluate, export and
    analyze tests: examples/synthetic (TINY_PER_PART examples a part, plus records in part1 that
    no manifest lists) and models/synthetic/fold{1,2}, each a completed Train folder holding the
    same untrained tiny model (also under "model", with its file under "model_file")."""
    from tests._tiny_records import train_artifact, write_tiny_dataset, write_unlisted_records
    root = tmp_path_factory.mktemp("tiny_artifacts")
    examples = write_tiny_dataset(root / "examples" / "synthetic", per_part=TINY_PER_PART)
    write_unlisted_records(examples / "part1" / "stray.tfrecord.gz")
    model = jaa_keras.build_jaanet("bp4d", **TINY_NETWORK)
    model_file = root / "tiny.keras"
    model.save(model_file)
    models = {fold: train_artifact(root / "models" / "synthetic" / f"fold{fold}", model_file, fold)
              for fold in (1, 2)}
    return {"root": root, "examples": examples, "model": model, "model_file": model_file,
            "models": models}


@pytest.fixture(scope="session")
def exported(tiny_artifacts):
    """The tiny run's fold 1 exported by the Export stage into serving/jaa_net/1 (the export and
    analyze tests share it)."""
    import tensorflow as tf
    from components.export.component import run_export
    serving = tiny_artifacts["root"] / "serving" / "jaa_net"
    result = run_export(model=tiny_artifacts["models"][1], output=serving, dataset="synthetic",
                        examples=tiny_artifacts["examples"], log=None)
    version = result.outputs["saved_model"].path
    return {**tiny_artifacts, "model_dir": tiny_artifacts["models"][1], "serving": serving,
            "result": result, "version": version, "loaded": tf.saved_model.load(str(version))}
