"""Loading a trained model and the data's AU set, with the checks a user's mistake needs.

Shared by the Evaluate and Export stages. Every failure a user can cause is a `UserError` that
names the file: a missing or corrupt model file, a preprocessed dataset without its stats /
manifest, a model trained on another AU set than the data.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from components.base import COMPLETION_FILE, UserError
from schemas.face import AU_SETS

MODEL_FILE = "model.keras"              # what the Train stage writes into models/<dataset>/fold{k}/
DATA_FILES = ("stats.json", "manifest.json")  # where a preprocessed dataset names its AU set


def model_path(model_dir: str | os.PathLike) -> Path:
    return Path(model_dir) / MODEL_FILE


def load_model(model_dir: str | os.PathLike):
    """The trained JaaNet in `model_dir`/model.keras (not compiled: inference only)."""
    path = model_path(model_dir)
    if not path.is_file():
        raise UserError(f"model file {path} does not exist; run the train stage for this fold "
                        "(or point at a models/<dataset>/fold<k> folder that holds model.keras)")
    import keras

    # `import jaa_keras` alone stays light (the preprocessing job imports it); the model module
    # registers JaaNet and its layers, which a fresh process needs before reading the file.
    import jaa_keras.model  # noqa: F401
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as e:  # a truncated zip, a foreign file, a config that no longer builds ...
        reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        # Never advise retraining here: the file may be fine and this code the one that changed.
        raise UserError(f"model file {path} could not be loaded ({type(e).__name__}: {reason}). "
                        "Check that it is the whole model.keras the train stage wrote (a copy cut "
                        "short or another file fails like this) and that this checkout's code and "
                        f"packages match those that trained it ('versions' in "
                        f"{path.parent / COMPLETION_FILE})") from None
    if not hasattr(model, "config") or not hasattr(model.config, "aus"):
        raise UserError(f"model file {path} holds a {type(model).__name__}, not a JAA-Net model")
    return model


def _aus_from(value, path: Path) -> tuple[int, ...]:
    """AU numbers from a list of ints or of names like "AU01"."""
    try:
        return tuple(int(str(a).upper().removeprefix("AU")) for a in value)
    except (TypeError, ValueError):
        raise UserError(f"{path}: 'aus' must list AU numbers or names like AU01, got {value!r}") from None


def data_aus(examples_dir: str | os.PathLike) -> tuple[tuple[int, ...], Path]:
    """The AU set of a preprocessed dataset and the file it comes from (stats.json, else manifest.json)."""
    examples_dir = Path(examples_dir)
    for name in DATA_FILES:
        path = examples_dir / name
        if not path.is_file():
            continue
        try:
            content = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{path} is not valid JSON ({e}); re-run the preprocess stage") from None
        if isinstance(content, dict) and content.get("aus"):
            return _aus_from(content["aus"], path), path
    raise UserError(f"{examples_dir} has no {' or '.join(DATA_FILES)} naming its AU set ('aus'); "
                    "the preprocessed dataset is incomplete: re-run the preprocess stage")


def check_au_set(model, model_dir, examples_dir=None, dataset: str | None = None) -> tuple[int, ...]:
    """The model's AU tuple, once it agrees with the data's (stats/manifest) or the dataset's set."""
    model_aus = tuple(int(a) for a in model.config.aus)
    if examples_dir is not None:
        aus, source = data_aus(examples_dir)
    elif dataset in AU_SETS:
        aus, source = AU_SETS[dataset], f"the {dataset} AU set (schemas/face.py)"
    else:
        return model_aus
    if model_aus != tuple(aus):
        raise UserError(
            f"model file {model_path(model_dir)} was trained on AUs {list(model_aus)} but {source} "
            f"lists AUs {list(aus)}: a model only evaluates or serves the AU set it was trained "
            "on; train on this dataset (or pass the models of the dataset these examples come from)")
    return model_aus
