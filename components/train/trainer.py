"""Training one fold: phases, checkpoints each epoch, exact resume, NaN stop, TensorBoard.

Layout of the fold folder (the train stage's artifact):
    model.keras       the trained model (the best validation epoch for a keep_best phase)
    checkpoints/      epoch-NNN/ {weights.npz, optimizer.npz, state.json (written last)}
    logs/             TensorBoard event files (one scalar per metric per epoch, and the lr)
    history.json      one entry per epoch: phase, learning rate, loss parts, f1, landmark error

Resume: epoch e's data order and augmentation depend on (seed, e) only (input_pipeline), the
checkpoint holds the weights (BatchNorm statistics included), the optimiser's variables (momentum,
iteration count) and the position in the schedule, and nothing else in training draws random
numbers. A run killed at any point and restarted continues from its last complete checkpoint and
ends with the weights an uninterrupted run ends with.

Freezing (paper schedule phases 2 and 3): `layer.trainable = False` on the frozen modules, then a
fresh compile with a fresh optimiser (Caffe starts each step with a new solver). A frozen Keras
BatchNormalization layer also runs in inference mode (moving statistics); Caffe's frozen layers
kept batch statistics. Either way the frozen layers' parameters do not move.
"""
from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path

import numpy as np

from components.base import UserError, read_json, write_json_atomic
from components.train import input_pipeline as ip
from components.train.schedule import Phase, learning_rate, optimizer_for
from pipeline.manifest import corrupt_record_error

CHECKPOINT_STATE = "state.json"
# Keyed by each variable's path in the model. Written with NumPy rather than Keras' .weights.h5:
# 0.24 s against 1.7 s for the 800 tensors of the synthetic preset's network, every epoch.
CHECKPOINT_WEIGHTS = "weights.npz"


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


# ----------------------------------------------------------------------------------------------
# Stats: AU loss weights of a training split
def au_weights_for_fold(examples_dir, fold: int, aus) -> np.ndarray:
    """AU loss weights of fold `fold`'s training split (the two other parts) from stats.json.

    The preprocessing job (pipeline/job.py) writes them as stats["splits"]["fold<k>"]["weights"],
    in the order of stats["aus"] ("AU01", ...), with w_i = (1/r_i) * n / sum_k 1/r_k (docs/network.md).
    """
    path = Path(examples_dir) / "stats.json"
    if not path.is_file():
        raise UserError(f"{path} is missing: the AU loss weights of each training split come "
                        "from it; run the preprocess stage again (--stages preprocess --force)")
    stats = read_json(path, "stats file")
    names = [f"AU{int(a):02d}" for a in aus]
    try:
        if [str(a) for a in stats["aus"]] != names:
            raise UserError(f"{path} describes AUs {stats['aus']}, the model detects {names}")
        weights = np.asarray(stats["splits"][f"fold{fold}"]["weights"], np.float32)
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path} has no AU weights for the training split of fold {fold} "
                        f"(missing {e}); run the preprocess stage again") from None
    if weights.shape != (len(aus),) or not np.all(np.isfinite(weights)) or np.any(weights <= 0):
        raise UserError(f"{path}: the AU weights of fold {fold} are {weights.tolist()}, expected "
                        f"{len(aus)} positive numbers")
    return weights


# ----------------------------------------------------------------------------------------------
# Checkpoints
def _checkpoint_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("epoch-"))


def latest_checkpoint(folder: Path) -> tuple[Path, dict] | None:
    """The last checkpoint whose state.json exists (a checkpoint's state is written last)."""
    for path in reversed(_checkpoint_dirs(folder)):
        if (path / CHECKPOINT_STATE).is_file():
            return path, read_json(path / CHECKPOINT_STATE, "checkpoint state")
    return None


def save_checkpoint(folder: Path, model, optimizer, state: dict, keep: int, protect=()) -> Path:
    final = folder / f"epoch-{state['global_epoch']:03d}"
    tmp = folder / f".tmp-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.savez(tmp / CHECKPOINT_WEIGHTS, **{v.path: np.asarray(v) for v in model.weights})
    np.savez(tmp / "optimizer.npz", **{f"v{i:04d}": np.asarray(v) for i, v in
                                       enumerate(optimizer.variables)})
    write_json_atomic(tmp / CHECKPOINT_STATE, state)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    keep_names = {f"epoch-{e:03d}" for e in protect}
    for old in _checkpoint_dirs(folder)[:-keep] if keep > 0 else []:
        if old.name not in keep_names:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint_weights(model, path: Path):
    """Set `model`'s weights from checkpoint folder `path` (every variable, by its path)."""
    file = path / CHECKPOINT_WEIGHTS
    try:
        with np.load(file) as data:
            values = {name: data[name] for name in data.files}
    except Exception as e:  # noqa: BLE001 - any failure here means an unusable file
        raise UserError(f"checkpoint {file} cannot be read ({type(e).__name__}: {str(e)[:200]}); "
                        f"delete {path} to resume from the checkpoint before it, or re-run with "
                        "--force to start over") from None
    mismatched = [v.path for v in model.weights
                  if v.path not in values or values[v.path].shape != tuple(v.shape)]
    if mismatched or len(values) != len(model.weights):
        raise UserError(f"checkpoint {file} does not match this model ({len(mismatched)} of its "
                        f"{len(model.weights)} weights missing or of another shape, e.g. "
                        f"{mismatched[:2]}); re-run with --force to start over")
    for variable in model.weights:
        variable.assign(values[variable.path])


def _load_optimizer(optimizer, variables, path: Path):
    file = path / "optimizer.npz"
    try:
        with np.load(file) as data:
            values = [data[f"v{i:04d}"] for i in range(len(data.files))]
    except Exception as e:  # noqa: BLE001
        raise UserError(f"checkpoint {file} cannot be read ({type(e).__name__}); delete {path} "
                        "to resume from the checkpoint before it, or re-run with --force") from None
    optimizer.build(variables)
    if len(values) != len(optimizer.variables) or any(
            tuple(v.shape) != tuple(a.shape) for v, a in zip(optimizer.variables, values)):
        raise UserError(f"checkpoint {file} does not match this training run's optimiser; "
                        "re-run with --force to start over")
    for v, a in zip(optimizer.variables, values):
        v.assign(a)


# ----------------------------------------------------------------------------------------------
def validation_subjects(examples_dir, train_parts, one_in: int, seed: int) -> tuple[str, ...]:
    """About 1 in `one_in` subjects of the training parts (at least one), picked with `seed`.

    The subjects come from the preprocessing job's manifest.json ("subjects" per part). They are
    held out of training in a keep_best phase and score its epochs (the released code picked the
    best epoch on the test part, which would leak the test set into model selection).
    """
    path = Path(examples_dir) / "manifest.json"
    manifest = read_json(path, "manifest") if path.is_file() else {}
    try:
        subjects = sorted({s for p in train_parts for s in manifest["subjects"][str(p)]})
    except (KeyError, TypeError):
        raise UserError(f"{path} lists no subjects per part; the joint schedule needs them to hold "
                        "out validation subjects (run the preprocess stage again)") from None
    if len(subjects) < 2:
        raise UserError(f"{path}: the training parts have {len(subjects)} subject(s); best-epoch "
                        "selection needs at least 2 (one held out)")
    count = max(1, round(len(subjects) / max(one_in, 1)))
    order = np.random.default_rng(seed).permutation(len(subjects))
    return tuple(sorted(subjects[i] for i in order[:count]))


def _strategy(log):
    import tensorflow as tf
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        log(f"training on {len(gpus)} GPUs with MirroredStrategy")
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _set_trainable(model, modules):
    for name in ("region", "alignment", "global", "attention", "au_head"):
        for layer in model.module_layers(name):
            layer.trainable = name in modules


def _finite(value) -> bool:
    return value is not None and math.isfinite(float(value))


class _NanStop:
    """A Keras callback stopping at the first non-finite batch loss (made lazily: needs keras)."""

    @staticmethod
    def make():
        import keras

        class NanStop(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.bad_batch = None

            def on_train_batch_end(self, batch, logs=None):
                loss = (logs or {}).get("loss")
                if loss is not None and not math.isfinite(float(loss)) and self.bad_batch is None:
                    self.bad_batch = batch
                    self.model.stop_training = True
        return NanStop()


def _suspects(dataset, bad_batch) -> str:
    """The records of the batch whose loss was not finite and of the one before it (its update
    produced the weights that loss was computed with), as "subject task #frame". `dataset` is the
    epoch's data again (the same order: a function of seed and epoch), read up to that batch."""
    if bad_batch is None:
        return ""
    named = []
    for index, (_, labels) in enumerate(dataset.take(bad_batch + 1)):
        if index >= bad_batch - 1:
            records = ", ".join(f"{s.decode()} {t.decode()} #{f}" for s, t, f in zip(
                labels["subject"].numpy(), labels["task"].numpy(), labels["frame"].numpy()))
            named.append(f"batch {index}: {records}")
    return f" Records (subject task #frame) of {' and of '.join(reversed(named))}."


def evaluate_model(model, dataset) -> dict:
    """Mean and per-AU F1 and landmark mean error over a dataset (centre crops)."""
    from jaa_keras.metrics import au_detection_scores, landmark_errors, landmark_summary
    labels, probabilities, predicted, true, iod = [], [], [], [], []
    for images, y in dataset:
        out = model(images, training=False)
        probabilities.append(np.asarray(out["au_probability"], np.float32))
        predicted.append(np.asarray(out["landmarks"], np.float32))
        labels.append(np.asarray(y["au"]))
        true.append(np.asarray(y["landmarks"]))
        iod.append(np.asarray(y["inter_ocular"]))
    if not labels:
        return {}
    au = au_detection_scores(np.concatenate(labels), np.concatenate(probabilities))
    errors = landmark_errors(np.concatenate(predicted), np.concatenate(true), np.concatenate(iod))
    return {"mean_f1": float(au["mean_f1"]), "mean_accuracy": float(au["mean_accuracy"]),
            "au_f1": [float(f) for f in au["f1"]],
            **{f"landmark_{k}": float(v) for k, v in landmark_summary(errors).items()}}


def train_fold(*, examples_dir, output_dir, model_config, phases: list[Phase], au_weights,
               train_parts, batch_size=9, momentum=0.9, weight_decay=5e-4, lr_decay=0.3,
               lr_decay_every=2, seed=0, shuffle_buffer=4096, mixed_precision=False,
               keep_checkpoints=2, validation_buckets=10, init_model_path=None, verbose=1,
               stop_after_epochs=None, log=print) -> dict:
    """Train one model; returns the summary recorded by the stage. See the module doc."""
    import keras
    import tensorflow as tf
    from jaa_keras import build_jaanet
    from jaa_keras.losses import JaaNetLoss

    out = Path(output_dir)
    ckpt_dir, log_dir = out / "checkpoints", out / "logs"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    files = ip.part_files(examples_dir, train_parts)
    num_aus = model_config.num_aus
    total_epochs = sum(p.epochs for p in phases)
    keep_best = any(p.keep_best for p in phases)

    previous_policy = keras.config.dtype_policy()
    if mixed_precision:
        gpu = bool(tf.config.list_logical_devices("GPU"))
        keras.config.set_dtype_policy("mixed_float16" if gpu else "mixed_bfloat16")
    try:
        keras.utils.set_random_seed(seed)  # initial weights; data randomness is stateless
        strategy = _strategy(log)
        with strategy.scope():
            model = build_jaanet(model_config)
        resume = latest_checkpoint(ckpt_dir)
        history: list[dict] = []
        best = {"epoch": None, "score": -math.inf}
        start_global = 0
        transfer = None
        if resume is not None:
            path, state = resume
            load_checkpoint_weights(model, path)
            history = state.get("history", [])
            best = state.get("best", best)
            start_global = state["global_epoch"]
            log(f"resuming from {path} (epoch {start_global} of {total_epochs})")
        elif init_model_path is not None:
            from components.train.transfer import seed_from
            source = _load_model(init_model_path)
            transfer = seed_from(source, model, str(init_model_path))
            log(f"seeded from {init_model_path}: {transfer}")
            del source

        writer = tf.summary.create_file_writer(str(log_dir))
        validation, train_split = None, None
        if keep_best:
            held_out = validation_subjects(examples_dir, train_parts, validation_buckets, seed)
            log(f"best-epoch selection on held-out training subjects {', '.join(held_out)}")
            validation = ip.make_dataset(files, num_aus, model_config.crop_size, training=False,
                                         batch_size=max(batch_size, 32),
                                         subject_split=("validation", held_out))
            train_split = ("train", held_out)
        record_counts = ip.file_record_counts(files, examples_dir)
        num_train = sum(record_counts) if train_split is None else \
            ip.count_examples(files, train_split)
        if num_train == 0:
            raise UserError(f"no training examples in {examples_dir} parts {list(train_parts)}")
        log(f"{num_train} training examples in parts {list(train_parts)}")

        def epoch_data(epoch, keep_metadata=False):   # the same batches for a given epoch
            return ip.make_dataset(files, num_aus, model_config.crop_size, training=True,
                                   batch_size=batch_size, seed=seed, epoch=epoch,
                                   shuffle_buffer=shuffle_buffer, subject_split=train_split,
                                   num_examples=num_train, record_counts=record_counts,
                                   keep_metadata=keep_metadata)

        t_start = time.perf_counter()
        global_epoch = 0
        epochs_run = 0
        for phase_index, phase in enumerate(phases):
            phase_end = global_epoch + phase.epochs
            if phase_end <= start_global:
                global_epoch = phase_end
                continue
            with strategy.scope():
                _set_trainable(model, phase.modules)
                optimizer = optimizer_for(phase, momentum, weight_decay)
                loss = JaaNetLoss(model.config, au_weights, lambda_align=phase.lambda_align)
                model.compile(optimizer=optimizer, objective=loss)
            if start_global > global_epoch:  # resume inside this phase
                _load_optimizer(model.optimizer, model.trainable_variables, resume[0])
            for epoch_in_phase in range(max(0, start_global - global_epoch), phase.epochs):
                epoch = global_epoch + epoch_in_phase  # 0-based global epoch
                lr = learning_rate(phase, epoch_in_phase, lr_decay, lr_decay_every)
                model.optimizer.learning_rate.assign(lr)
                log(f"[fold] phase {phase.name} ({phase_index + 1}/{len(phases)}), "
                    f"epoch {epoch_in_phase + 1}/{phase.epochs} (overall {epoch + 1}/"
                    f"{total_epochs}), lr {lr:.3g}, training {', '.join(phase.modules)}")
                data = epoch_data(epoch)
                nan_stop = _NanStop.make()
                steps_before = int(model.optimizer.iterations.numpy())
                t0 = time.perf_counter()
                fit = model.fit(data, epochs=1, verbose=verbose, callbacks=[nan_stop], shuffle=False)
                seconds = time.perf_counter() - t0
                logs = {k: float(v[-1]) for k, v in fit.history.items() if v}
                if nan_stop.bad_batch is not None or not _finite(logs.get("loss")):
                    last = latest_checkpoint(ckpt_dir)
                    where = f"the last good checkpoint is {last[0]}" if last else \
                        "no checkpoint was written before it"
                    suspects = _suspects(epoch_data(epoch, keep_metadata=True),
                                         nan_stop.bad_batch)
                    raise TrainingDiverged(
                        f"the training loss became NaN in epoch {epoch + 1} (phase {phase.name}"
                        f", batch {nan_stop.bad_batch}, lr {lr:.3g}); training stopped and "
                        f"{where}.{suspects} Check those records' labels (landmarks, inter-ocular "
                        "distance), or lower the learning rate (--learning_rates), and run again.")
                steps = int(model.optimizer.iterations.numpy()) - steps_before
                entry = {"epoch": epoch + 1, "phase": phase.name, "epoch_in_phase": epoch_in_phase + 1,
                         "learning_rate": lr, "seconds": round(seconds, 2), "steps": steps,
                         "images_per_s": round(steps * batch_size / max(seconds, 1e-9), 2), **logs}
                if validation is not None and phase.keep_best:
                    scores = evaluate_model(model, validation)
                    entry.update({f"val_{k}": v for k, v in scores.items()})
                    score = scores.get("mean_f1", -math.inf) - scores.get("landmark_mean_error", 0)
                    if scores and score > best["score"]:
                        best = {"epoch": epoch + 1, "score": score}
                history.append(entry)
                with writer.as_default():
                    for k, v in entry.items():
                        if isinstance(v, (int, float)) and k != "epoch":
                            tf.summary.scalar(k, v, step=epoch + 1)
                writer.flush()
                state = {"global_epoch": epoch + 1, "phase": phase.name, "phase_index": phase_index,
                         "epoch_in_phase": epoch_in_phase + 1, "history": history, "best": best}
                save_checkpoint(ckpt_dir, model, model.optimizer, state, keep_checkpoints,
                                protect=[best["epoch"]] if best["epoch"] else [])
                epochs_run += 1
                if stop_after_epochs is not None and epochs_run >= stop_after_epochs:
                    raise KeyboardInterrupt(f"stopped after {epochs_run} epoch(s) (test hook)")
            global_epoch = phase_end
            start_global = max(start_global, global_epoch)

        if keep_best and best["epoch"] is not None:
            best_path = ckpt_dir / f"epoch-{best['epoch']:03d}"
            log(f"keeping the best validation epoch {best['epoch']} ({best_path})")
            load_checkpoint_weights(model, best_path)
        model.save(out / "model.keras")
        write_json_atomic(out / "history.json", history)
        seconds = time.perf_counter() - t_start
        final = history[-1] if history else {}
        return {
            "epochs": total_epochs, "epochs_run_now": epochs_run,
            "best_epoch": best["epoch"], "train_parts": list(train_parts),
            "training_files": len(files), "seconds": round(seconds, 1),
            "final_loss": final.get("loss"), "final_train_f1": final.get("f1"),
            "final_train_landmark_error": final.get("landmark_error"),
            "transfer": transfer, "model_config": model_config.to_dict(),
        }
    except tf.errors.DataLossError as error:   # a record damaged after part_files checked it
        raise corrupt_record_error(examples_dir, files, error) from None
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _load_model(path):
    import keras
    path = Path(path)
    file = path / "model.keras" if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"{file} does not exist: --init_from needs a trained model folder "
                        "(models/<dataset>/fold<k>) or a .keras file")
    try:
        return keras.models.load_model(file, compile=False)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{file} cannot be loaded as a JAA-Net ({type(e).__name__}: "
                        f"{str(e)[:200]})") from None
