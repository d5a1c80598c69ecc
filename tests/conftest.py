"""Shared test set-up and fixtures."""
# Before any test module imports TensorFlow: jaa_keras sets the environment it must start with
# (oneDNN kernels for the grouped convolutions' gradients on every CPU).
import jaa_keras  # noqa: F401
import pytest

EXPORT_CROP = 48  # smaller than 176: serving must also resize, as the input pipeline does


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """A tiny model exported once by the Export stage into serving/jaa_net/1, beside the tiny
    examples it was exported with (the export and analyze tests share it)."""
    import tensorflow as tf
    from components.base import write_completion_record
    from components.export.component import run_export
    from tests._tiny_records import train_artifact, write_tiny_dataset
    root = tmp_path_factory.mktemp("export")
    examples = root / "examples" / "synthetic"
    write_tiny_dataset(examples, per_part=6)
    write_completion_record(examples, stage="preprocess", parameters={"dataset": "synthetic"},
                            identity={"dataset": "synthetic"})
    model = jaa_keras.build_jaanet(jaa_keras.preset("bp4d", width_unit=1, crop_size=EXPORT_CROP,
                                                    hidden_units=16))
    model_file = root / "tiny.keras"
    model.save(model_file)
    model_dir = train_artifact(root / "models" / "synthetic" / "fold1", model_file)
    serving = root / "serving" / "jaa_net"
    result = run_export(model=model_dir, output=serving, dataset="synthetic", examples=examples,
                        log=None)
    version = result.outputs["saved_model"].path
    return {"root": root, "examples": examples, "model": model, "model_file": model_file,
            "model_dir": model_dir, "serving": serving, "result": result, "version": version,
            "loaded": tf.saved_model.load(str(version))}
