"""Input pipeline alone: images/s that components/train/input_pipeline.py delivers.

    python -m benchmarks.bench_input_pipeline [--examples 2000] [--crop 176] [--batch 9]
                                              [--shuffle_buffer 4096]

Writes GZIP TFRecords of textured 200 x 200 JPEG faces (so decoding costs what a real face
costs), then times full passes of the training dataset (read the epoch's permutation window by
window, parse, decode, random crop, flip, normalise, batch) and of the evaluation dataset, after
one warm-up pass. --shuffle_buffer below --examples makes training read its epoch in several
passes over the files (examples / shuffle_buffer = 24 is BP4D's ~97k training frames against the
default 4,096). Compare with what training consumes: about 3.4 images/s for the paper's network
on 2 CPU cores (bench_network), 40-50 images/s for the synthetic preset's network.

--fit_epochs N also trains the synthetic preset's network (c = 2, crop 64, d = 64) for N epochs
on these records as the trainer does (one `fit` per epoch), with tf.data's autotuning off (as
make_dataset sets it) and on, and reports each epoch's seconds inside Keras' epoch and after it
(the iterator's teardown).
"""
import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf

from components.train import input_pipeline as ip
from schemas.example import ALIGNED_SIZE, encode_example
from schemas.face import AU_SETS


def write_textured_records(folder, examples, shards=4, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ALIGNED_SIZE, 0:ALIGNED_SIZE]
    files = []
    per_shard = -(-examples // shards)
    for shard in range(shards):
        path = os.path.join(folder, f"data-{shard:05d}-of-{shards:05d}.tfrecord.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for i in range(min(per_shard, examples - shard * per_shard)):
                f = rng.uniform(0.02, 0.08, 3)
                base = 128 + 60 * np.sin(xx[..., None] * f + yy[..., None] * f[::-1])
                image = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
                lm = rng.uniform(40, 160, 98).astype(np.float32)
                writer.write(encode_example(
                    image_jpeg=tf.io.encode_jpeg(image, quality=90).numpy(), landmarks=lm,
                    au=rng.integers(-1, 2, 12), inter_ocular=60.0, subject="S", task="T",
                    frame=i))
        files.append(path)
    return files


def time_pass(make, repeats=3):
    """Median images/s over `repeats` full passes, after one warm-up pass."""
    for _ in make(0):  # warm-up pass (graph tracing, file cache)
        pass
    rates = []
    for r in range(repeats):
        start = time.perf_counter()
        count = sum(int(images.shape[0]) for images, _ in make(r + 1))
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def fit_epochs(files, epochs: int, batch: int) -> dict:
    import keras

    import jaa_keras
    from components.train.schedule import build_schedule, optimizer_for
    from jaa_keras.losses import JaaNetLoss

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.begin = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.end = time.perf_counter()

    counts = ip.file_record_counts(files)
    results = {}
    for autotuning in (False, True):
        keras.utils.set_random_seed(0)
        model = jaa_keras.build_jaanet("bp4d", width_unit=2, crop_size=64, hidden_units=64)
        model.compile(optimizer=optimizer_for(build_schedule("paper", "bp4d")[0]),
                      objective=JaaNetLoss(model.config))
        options = tf.data.Options()
        options.autotune.enabled = autotuning
        inside, after = [], []
        for epoch in range(epochs):
            data = ip.make_dataset(files, len(AU_SETS["bp4d"]), 64, training=True,
                                   batch_size=batch, epoch=epoch, num_examples=sum(counts),
                                   record_counts=counts).with_options(options)
            clock = EpochClock()
            model.fit(data, epochs=1, verbose=0, callbacks=[clock], shuffle=False)
            returned = time.perf_counter()
            inside.append(round(clock.end - clock.begin, 2))
            after.append(round(returned - clock.end, 2))
        results[f"autotuning {'on' if autotuning else 'off'}"] = {
            "epoch_s": inside, "after_epoch_s": after}
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--crop", type=int, default=176)
    parser.add_argument("--batch", type=int, default=9)
    parser.add_argument("--shuffle_buffer", type=int, default=4096,
                        help="records per reading window of a training epoch")
    parser.add_argument("--fit_epochs", type=int, default=0,
                        help="also time N training epochs of the synthetic preset's network")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    num_aus = len(AU_SETS["bp4d"])
    with tempfile.TemporaryDirectory() as folder:
        files = write_textured_records(folder, args.examples)
        train = time_pass(lambda e: ip.make_dataset(files, num_aus, args.crop, training=True,
                                                    batch_size=args.batch, epoch=e,
                                                    shuffle_buffer=args.shuffle_buffer))
        evaluate = time_pass(lambda e: ip.make_dataset(files, num_aus, args.crop, training=False,
                                                       batch_size=args.batch))
        fitted = fit_epochs(files, args.fit_epochs, args.batch) if args.fit_epochs else None
    result = {"benchmark": "input_pipeline", "examples": args.examples, "crop": args.crop,
              "batch": args.batch, "shuffle_buffer": args.shuffle_buffer, "cpu_cores": os.cpu_count(),
              "train_images_per_s": round(train, 1), "eval_images_per_s": round(evaluate, 1),
              "tensorflow": tf.__version__}
    if fitted:
        result["fit_epochs"] = fitted
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
