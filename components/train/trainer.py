"""Training one fold: phases, checkpoints each epoch, exact resume, NaN stop, TensorBoard.

One Keras `fit` per phase; its callbacks step the learning rate, stop at a NaN loss, write the
history entry and checkpoint of each epoch, and the TensorBoard logs.

Layout of the fold folder (the train stage's artifact):
    model.keras       the trained model (the best validation epoch for a keep_best phase)
    checkpoints/      epoch-NNN/ {weights.npz, optimizer.npz, state.json (written last)}
    logs/             TensorBoard: train/ and validation/ (keep_best phases) scalars per epoch
                      (loss parts, f1, landmark error, lr, speed), attention/ the attention maps
                      of a few faces
    history.json      one entry per epoch: phase, learning rate, speed, loss parts, f1, landmark
                      error, and in keep_best phases the same on the held-out subjects (val_*)

Auxiliary tasks (RTATL, model_config.auxiliary): in the phases that train the region layers,
each step also takes a batch of the auxiliary stream (TrainingData), x = {"images",
"auxiliary_images"}, and the objective adds the tasks' losses, recorded as their own parts in the
history and TensorBoard. label_fraction keeps the
codes of a share of the coded frames; the others leave the labelled stream (the epoch is then
shorter) but stay in the auxiliary pool.

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

import logging
import math
import os
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from components.base import UserError, read_json, write_json_atomic
from components.train import input_pipeline as ip
from components.train.schedule import Phase, learning_rate, optimizer_for
from pipeline.manifest import corrupt_record_error

_LOG = logging.getLogger(__name__)

CHECKPOINT_STATE = "state.json"
# Keyed by each variable's path in the model. Written with NumPy rather than Keras' .weights.h5:
# 0.24 s against 1.7 s for the 800 tensors of the synthetic preset's network, every epoch.
CHECKPOINT_WEIGHTS = "weights.npz"
ATTENTION_FACES = 3   # faces whose attention maps TensorBoard shows after each epoch


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


class TrainingData:
    """One fold's training data: the labelled stream (the codes label_fraction keeps), the
    held-out subjects that score keep_best phases (the same fraction), and, when the model trains
    auxiliary tasks, their stream zipped batch by batch with the labelled one (module doc of
    input_pipeline). Held-out subjects are left out of both streams. Each epoch's batches are a
    function of (seed, epoch)."""

    def __init__(self, examples_dir, train_parts, model_config, *, files, pool, batch_size,
                 seed, shuffle_buffer, keep_best, validation_buckets, label_fraction=1.0,
                 auxiliary_ratio=1.0, log=_LOG.info):
        self.config, self.files, self.pool = model_config, files, pool
        self.batch_size, self.seed, self.shuffle_buffer = batch_size, seed, shuffle_buffer
        self.label_fraction = label_fraction
        self.tasks = model_config.auxiliary
        num_aus, crop = model_config.num_aus, model_config.crop_size
        self.record_counts = ip.file_record_counts(files, examples_dir)
        self.train_split, self.validation = None, None
        if keep_best:
            held_out = validation_subjects(examples_dir, train_parts, validation_buckets, seed)
            log(f"best-epoch selection on held-out training subjects {', '.join(held_out)}")
            self.train_split = ("train", held_out)
        if self.train_split is None and label_fraction == 1:
            self.num_train = sum(self.record_counts)
        else:
            self.num_train = ip.count_examples(files, self.train_split, label_fraction, seed)
        kept = "" if label_fraction == 1 else f" (the {label_fraction:g} of them that keep " \
                                              "their codes)"
        if self.num_train == 0:
            raise UserError(f"no training examples in {examples_dir} parts {list(train_parts)}"
                            f"{kept}")
        if keep_best:
            validation_split = ("validation", held_out)
            num_validation = (sum(self.record_counts) - self.num_train if label_fraction == 1
                              else ip.count_examples(files, validation_split, label_fraction,
                                                     seed))
            if num_validation == 0:
                raise UserError(f"the held-out subjects {', '.join(held_out)} have no coded "
                                f"frame left{kept}; raise label_fraction")
            self.validation = ip.make_dataset(
                files, num_aus, crop, training=False, batch_size=max(batch_size, 32),
                subject_split=validation_split, num_examples=num_validation,
                label_fraction=label_fraction, seed=seed)
        self.steps_per_epoch = math.ceil(self.num_train / batch_size)
        log(f"{self.num_train} training examples in parts {list(train_parts)}{kept}")
        if self.tasks:
            # Faces per step: at least one, so that every step trains the tasks.
            self.auxiliary_batch = max(1, round(auxiliary_ratio * batch_size))
            self.pool_counts = ip.file_record_counts(pool, examples_dir)
            self.pool_size = (sum(self.pool_counts) if self.train_split is None
                              else ip.count_examples(pool, self.train_split))
            log(f"auxiliary tasks {', '.join(self.tasks)}: {self.auxiliary_batch} faces a step "
                f"from {self.pool_size} (coded and unlabelled frames of parts "
                f"{list(train_parts)}, {len(pool) - len(files)} unlabelled file(s))")

    def epoch(self, epoch: int, keep_metadata: bool = False,
              auxiliary: bool = True) -> tf.data.Dataset:
        """The batches of `epoch` (0-based): the same for every run with this seed; the
        labelled ones alone when `auxiliary` is False."""
        config = self.config
        labelled = ip.make_dataset(
            self.files, config.num_aus, config.crop_size, training=True,
            batch_size=self.batch_size, seed=self.seed, epoch=epoch,
            shuffle_buffer=self.shuffle_buffer, subject_split=self.train_split,
            num_examples=self.num_train, record_counts=self.record_counts,
            keep_metadata=keep_metadata, label_fraction=self.label_fraction)
        if not self.tasks or not auxiliary:
            return labelled
        auxiliary = ip.auxiliary_dataset(
            self.pool, config.num_aus, config.crop_size, tasks=self.tasks, aus=config.aus,
            patch=config.inpainting_patch, batch_size=self.auxiliary_batch,
            batches=self.steps_per_epoch, seed=self.seed, epoch=epoch,
            shuffle_buffer=self.shuffle_buffer, record_counts=self.pool_counts,
            pool_size=self.pool_size, subject_split=self.train_split)
        return ip.with_auxiliary(labelled, auxiliary)

    def epochs(self, first: int, end: int, auxiliary: bool = True) -> tf.data.Dataset:
        """Epochs first .. end - 1 (0-based) one after the other, as one fit reads them."""
        batches = self.epoch(first, auxiliary=auxiliary)
        for epoch in range(first + 1, end):
            batches = batches.concatenate(self.epoch(epoch, auxiliary=auxiliary))
        return batches

    def auxiliary_summary(self) -> dict | None:
        """What the stage records of the auxiliary stream."""
        if not self.tasks:
            return None
        return {"tasks": list(self.tasks), "batch_size": self.auxiliary_batch,
                "pool": self.pool_size, "unlabelled_files": len(self.pool) - len(self.files)}


def _strategy(log):
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        log(f"training on {len(gpus)} GPUs with MirroredStrategy")
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _set_trainable(model, modules, auxiliary: bool):
    """The phase's modules trainable, the others frozen; the auxiliary heads train only in a
    phase that trains the auxiliary tasks (elsewhere they would be variables without gradients)."""
    for name in ("region", "alignment", "global", "attention", "au_head"):
        for layer in model.module_layers(name):
            layer.trainable = name in modules
    for head in (model.inpainting_decoder, model.flow_head):
        if head is not None:
            head.trainable = auxiliary


class _StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Keras's stop at the first non-finite batch loss, remembering where: (epoch, batch)."""

    def __init__(self):
        super().__init__()
        self.epoch, self.stopped_at = None, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        super().on_batch_end(batch, logs)
        if self.model.stop_training and self.stopped_at is None:
            self.stopped_at = (self.epoch, batch)


class _EpochRecord(keras.callbacks.Callback):
    """After each complete epoch: its history entry, the best-epoch score, and a checkpoint.

    Not Keras's BackupAndRestore or ModelCheckpoint: a checkpoint here also holds the position in
    the schedule, the history and the best epoch so far, and the best epoch's checkpoint is kept
    for keep_best (module doc). The epoch's speed goes into the logs too, so that the callbacks
    after this one (TensorBoard) see it.
    """

    def __init__(self, *, phase, phase_index, phase_start, lr_at, batch_size, checkpoints, keep,
                 history, best, auxiliary):
        super().__init__()
        self.auxiliary = auxiliary   # whether the phase trains the auxiliary tasks
        self.phase, self.phase_index, self.phase_start = phase, phase_index, phase_start
        self.lr_at, self.batch_size = lr_at, batch_size
        self.checkpoints, self.keep = checkpoints, keep
        self.history, self.best = history, best     # the run's, updated in place
        self.epochs_done = 0

    def _steps(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.steps_before = time.perf_counter(), self._steps()

    def on_train_batch_end(self, batch, logs=None):
        self.trained = time.perf_counter()   # the speed leaves out the validation after the epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_training:   # cut short by the NaN stop: neither recorded nor kept
            return
        seconds = self.trained - self.started
        steps = self._steps() - self.steps_before
        speed = {"seconds": round(seconds, 2), "steps": steps,
                 "images_per_s": round(steps * self.batch_size / max(seconds, 1e-9), 2)}
        logs.update(speed)
        # The held-out faces come without auxiliary ones, and so do the batches of a phase that
        # does not train the tasks: Keras would report those auxiliary losses as 0 (history and
        # TensorBoard, which reads these logs after this callback).
        for task in self.model.config.auxiliary:
            logs.pop(f"val_{task}", None)
            if not self.auxiliary:
                logs.pop(task, None)
        entry = {"epoch": epoch + 1, "phase": self.phase.name,
                 "epoch_in_phase": epoch - self.phase_start + 1,
                 "learning_rate": self.lr_at(epoch), **speed}
        entry.update({k: float(v) for k, v in logs.items() if k not in entry})
        if self.phase.keep_best and "val_f1" in logs:
            # The compiled metrics over the whole held-out set: F1 from its TP/FP/FN counts,
            # the landmark error its mean over images (jaa_keras.metrics).
            score = entry["val_f1"] - entry["val_landmark_error"]
            if score > self.best["score"]:
                self.best.update(epoch=epoch + 1, score=score)
        self.history.append(entry)
        state = {"global_epoch": epoch + 1, "phase": self.phase.name,
                 "phase_index": self.phase_index, "epoch_in_phase": entry["epoch_in_phase"],
                 "history": self.history, "best": self.best}
        save_checkpoint(self.checkpoints, self.model, self.model.optimizer, state, self.keep,
                        protect=[self.best["epoch"]] if self.best["epoch"] else [])
        self.epochs_done += 1


class _AttentionImages(keras.callbacks.Callback):
    """TensorBoard images after each epoch: for each of a few fixed faces, the face (grey)
    followed by the refined attention map of every AU, side by side."""

    def __init__(self, log_dir: Path, faces):
        super().__init__()
        self.writer, self.faces = tf.summary.create_file_writer(str(log_dir)), faces

    def on_epoch_end(self, epoch, logs=None):
        maps = tf.cast(self.model(self.faces, training=False)["attention"], tf.float32)
        size = maps.shape[1]
        grey = tf.image.resize(tf.reduce_mean((self.faces + 1) / 2, -1, keepdims=True),
                               (size, size))
        tiles = tf.concat([grey, tf.clip_by_value(maps, 0, 1)], axis=-1)   # (faces, h, w, 1 + AUs)
        strip = tf.reshape(tf.transpose(tiles, (0, 1, 3, 2)), (len(self.faces), size, -1, 1))
        with self.writer.as_default():
            tf.summary.image("attention", strip, step=epoch, max_outputs=len(self.faces))
        self.writer.flush()


def _suspects(dataset, bad_batch) -> str:
    """The records of the batch whose loss was not finite and of the one before it (its update
    produced the weights that loss was computed with), as "subject task #frame". `dataset` is the
    epoch's data again (the same order: a function of seed and epoch), read up to that batch."""
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
               auxiliary_ratio=1.0, label_fraction=1.0, log=_LOG.info) -> dict:
    """Train one model; returns the summary recorded by the stage. See the module doc."""
    from jaa_keras import build_jaanet
    from jaa_keras.losses import JaaNetLoss

    out = Path(output_dir)
    ckpt_dir, log_dir = out / "checkpoints", out / "logs"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    files = ip.part_files(examples_dir, train_parts)
    pool = files + ip.unlabelled_files(examples_dir, train_parts) if model_config.auxiliary else []
    num_aus = model_config.num_aus
    total_epochs = sum(p.epochs for p in phases)
    keep_best = any(p.keep_best for p in phases)

    previous_policy = keras.config.dtype_policy()
    if mixed_precision:
        gpu = bool(tf.config.list_logical_devices("GPU"))
        keras.config.set_dtype_policy("mixed_float16" if gpu else "mixed_bfloat16")
        if not gpu:
            _LOG.warning("--mixed_precision without a GPU computes in bfloat16, which is slower "
                         "than float32 on a CPU: the default run's steps took 1.3x as long on an "
                         "Intel Xeon with AMX and 1.8x on an AMD EPYC (BENCHMARKS.md), since the "
                         "grouped convolutions have no bfloat16 gradient there and run in float32 "
                         "between casts. It is meant for GPUs (float16).")
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

        data = TrainingData(examples_dir, train_parts, model_config, files=files, pool=pool,
                            batch_size=batch_size, seed=seed, shuffle_buffer=shuffle_buffer, keep_best=keep_best,
                            validation_buckets=validation_buckets, label_fraction=label_fraction,
                            auxiliary_ratio=auxiliary_ratio, log=log)
        faces, _ = next(iter(ip.make_dataset(files, num_aus, model_config.crop_size,
                                             training=False, batch_size=ATTENTION_FACES)))

        t_start = time.perf_counter()
        epochs_run = 0
        phase_end = 0
        for phase_index, phase in enumerate(phases):
            phase_start, phase_end = phase_end, phase_end + phase.epochs
            first = max(phase_start, start_global)   # the first epoch (0-based) this run trains
            if first >= phase_end:
                continue
            # The auxiliary tasks are there to shape the region layers (both heads' gradients
            # reach them): a phase that freezes those (the paper schedule's alignment and AU
            # phases) trains without them rather than fit the heads to frozen features.
            auxiliary = bool(model.config.auxiliary) and "region" in phase.modules
            with strategy.scope():
                _set_trainable(model, phase.modules, auxiliary)
                loss = JaaNetLoss(model.config, au_weights, lambda_align=phase.lambda_align)
                model.compile(optimizer=optimizer_for(phase, momentum, weight_decay),
                              objective=loss)
            if first > phase_start:  # resume inside this phase
                _load_optimizer(model.optimizer, model.trainable_variables, resume[0])

            def lr_at(epoch):   # this phase's step decay, at fit's (global, 0-based) epoch
                return learning_rate(phase, epoch - phase_start, lr_decay, lr_decay_every)
            log(f"[fold] phase {phase.name} ({phase_index + 1}/{len(phases)}): epochs "
                f"{first + 1}-{phase_end} of {total_epochs}, lr {lr_at(first):.3g}, training "
                f"{', '.join(phase.modules)}")
            nan_stop = _StopOnNaN()
            record = _EpochRecord(phase=phase, phase_index=phase_index, phase_start=phase_start,
                                  lr_at=lr_at, batch_size=batch_size, checkpoints=ckpt_dir,
                                  keep=keep_checkpoints, history=history, best=best,
                                  auxiliary=auxiliary)
            callbacks = [nan_stop, keras.callbacks.LearningRateScheduler(lambda e, _: lr_at(e)),
                         record,   # before TensorBoard, which then also shows the speed
                         keras.callbacks.TensorBoard(log_dir, write_graph=False),
                         _AttentionImages(log_dir / "attention", faces)]
            # One fit for the phase, over its epochs' data one after the other: fit's epoch e
            # reads data.epoch(e), exactly the batches a run resumed at e reads.
            model.fit(data.epochs(first, phase_end, auxiliary=auxiliary), initial_epoch=first,
                      epochs=phase_end, steps_per_epoch=data.steps_per_epoch,
                      validation_data=data.validation if phase.keep_best else None,
                      callbacks=callbacks, verbose=verbose, shuffle=False)
            epochs_run += record.epochs_done
            if nan_stop.stopped_at is not None:
                epoch, batch = nan_stop.stopped_at
                last = latest_checkpoint(ckpt_dir)
                where = f"the last good checkpoint is {last[0]}" if last else \
                    "no checkpoint was written before it"
                suspects = _suspects(data.epoch(epoch, keep_metadata=True, auxiliary=auxiliary),
                                     batch)
                raise TrainingDiverged(
                    f"the training loss became NaN in epoch {epoch + 1} (phase {phase.name}, "
                    f"batch {batch}, lr {lr_at(epoch):.3g}); training stopped and {where}."
                    f"{suspects} Check those records' labels (landmarks, inter-ocular "
                    "distance), or lower the learning rate (--learning_rates), and run again.")

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
            "training_files": len(files), "labelled_examples": data.num_train,
            "auxiliary": data.auxiliary_summary(), "seconds": round(seconds, 1),
            "final_loss": final.get("loss"), "final_train_f1": final.get("f1"),
            "final_train_landmark_error": final.get("landmark_error"),
            "transfer": transfer, "model_config": model_config.to_dict(),
        }
    except tf.errors.DataLossError as error:   # a record damaged after part_files checked it
        raise corrupt_record_error(examples_dir, pool or files, error) from None
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _load_model(path):
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
