"""Speed and memory of the JAA-Net network (BP4D preset unless told otherwise) on this machine.

    python -m benchmarks.bench_network            # every mode, each in a fresh process
    python -m benchmarks.bench_network --quick    # tiny width and few steps: checks the script runs
    python -m benchmarks.bench_network --modes train infer latency --feature_stacks paper,caffe
                                                  # the two stack layouts, one after the other

Modes: training images/s at batch 8 with the full objective; inference images/s at batch 32;
latency at batch 1; the same with XLA and with bfloat16 mixed precision; the two forms of the
per-patch / per-AU convolutions side by side (forward and backward of one layer); and the first
training step of a freshly compiled model (tracing: paid at the start of every training phase),
at the synthetic preset's size, as the trainer compiles it and with the optimiser left to Keras. Each mode runs
in its own process so its peak resident memory is its own. Medians over the timed steps.
--feature_stacks runs the train, infer and latency modes once per layout of the feature stacks
(jaa_keras.config: the paper's, or the Caffe release's with a quarter of the arithmetic).
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

from benchmarks.common import cpu_model, number_list
from jaa_keras.config import FEATURE_STACKS

MODES = ("train", "train_xla", "train_bf16", "infer", "infer_bf16", "latency", "forms",
         "first_step", "first_step_keras_optimizer")
NETWORK_MODES = ("train", "train_xla", "train_bf16", "infer", "infer_bf16", "latency")


def median_seconds(step, repeats: int) -> float:
    step()  # warm-up: tracing and first-touch allocations
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def network_mode(mode: str, quick: bool, feature_stack: str = "paper") -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    import jaa_keras
    from jaa_keras.losses import JaaNetLoss

    if mode.endswith("bf16"):
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    overrides = dict(width_unit=1, hidden_units=32) if quick else {}
    model = jaa_keras.build_jaanet("bp4d", feature_stack=feature_stack, **overrides)
    size, rng = model.config.crop_size, np.random.default_rng(0)
    repeats = 2 if quick or mode == "train_xla" else 10  # an XLA step on CPU takes minutes
    if mode.startswith("train"):
        batch = 8
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                      objective=JaaNetLoss(model.config), jit_compile=mode == "train_xla")
        images = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
        targets = {"au": rng.integers(0, 2, (batch, model.config.num_aus)),
                   "landmarks": rng.uniform(0.3 * size, 0.7 * size, (batch, 98)).astype(np.float32),
                   "inter_ocular": np.full(batch, 0.3 * size, np.float32)}
        seconds = median_seconds(lambda: model.train_on_batch(images, targets), repeats)
    else:
        batch = 1 if mode == "latency" else 32
        predict = tf.function(lambda x: model(x, training=False)["au_probability"])
        images = tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)), tf.float32)
        seconds = median_seconds(lambda: predict(images).numpy(), repeats)
    return {"batch": batch, "median_step_s": seconds, "images_per_s": batch / seconds}


def forms_mode(quick: bool) -> dict:
    """One layer's forward + backward: the form the network uses against the alternative. Each
    gets the seconds of its first call (tracing, graph optimisation, first run) and the median
    of later calls."""
    import tensorflow as tf

    from benchmarks.alternative_forms import au_branches_loop, patchwise_loop
    from jaa_keras.layers import AdaptiveAttention, PatchwiseConv
    from schemas.face import NUM_LANDMARKS

    batch, repeats = (2, 2) if quick else (8, 5)
    scale = 2 if quick else 1
    results = {}

    def timed(forward, inputs, variables):
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                outputs = tf.nest.flatten(forward(inputs))
                loss = tf.add_n([tf.reduce_sum(tf.square(o)) for o in outputs])
            return tape.gradient(loss, variables)
        start = time.perf_counter()
        [g.numpy() for g in step()]
        first = time.perf_counter() - start
        return {"first_s": first, "median_s": median_seconds(lambda: [g.numpy() for g in step()],
                                                            repeats)}

    # Region layer 1's first branch: 64 patches of 22 x 22, 32 -> 16 channels, each its own weights.
    x = tf.random.normal((batch, 176 // scale, 176 // scale, 32 // scale))
    layer = PatchwiseConv(8, 16 // scale)
    layer(x)
    results["patchwise: grouped conv (used)"] = timed(lambda v: layer(v, training=True), x,
                                                       layer.trainable_weights)
    results["patchwise: loop over 64 patches"] = timed(lambda v: patchwise_loop(layer, v, True), x,
                                                        layer.trainable_weights)
    # The AU branches of BP4D (12 AUs: refinement 52 -> 44, feature stack on 44 x 44 x 64) at the
    # paper's size, and at the synthetic preset's (crop 64, width unit 2: 16 x 16 x 16, batch 9).
    aus = (1, 2, 4) if quick else (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
    sizes = {"paper size": (batch, 176 // scale, 8 // scale), "synthetic size": (9, 64, 2)}
    for label, (images, crop, width) in sizes.items():
        attention = AdaptiveAttention(aus, crop, width, zeta=0.14, xi=0.56, enhancement=None)
        features = tf.random.normal((images, crop // 4, crop // 4, 8 * width))
        landmarks = tf.random.uniform((images, 2 * NUM_LANDMARKS), crop * 0.3, crop * 0.7)
        attention(features, landmarks)
        maps, _ = attention.initial_maps(landmarks)
        variables = attention.trainable_weights

        def used(inputs):
            outputs = attention(inputs, landmarks, training=True)
            return outputs["attention"], outputs["local"]

        results[f"AU branches, {label}: grouped conv (used)"] = timed(used, features, variables)
        results[f"AU branches, {label}: loop over AUs"] = timed(
            lambda v: au_branches_loop(attention, maps, v), features, variables)
    return {"batch": batch, "seconds": results}


def first_step_mode(mode: str, quick: bool) -> dict:
    """Seconds of the first training step after compile (tracing, graph optimisation, first run)
    and the median of the next ones. "first_step": compiled as the trainer compiles (the Caffe
    solver's fused momentum update, its slots made at compile time); "..._keras_optimizer": Keras'
    SGD, its slots made inside the first traced step (Keras' default without a strategy)."""
    import keras
    import numpy as np

    import jaa_keras
    from components.train.schedule import build_schedule, optimizer_for
    from jaa_keras.losses import JaaNetLoss

    overrides = dict(width_unit=1, crop_size=32, hidden_units=16) if quick else \
        dict(width_unit=2, crop_size=64, hidden_units=64)      # the synthetic preset's network
    model = jaa_keras.build_jaanet("bp4d", **overrides)
    objective = JaaNetLoss(model.config)
    if mode == "first_step":
        model.compile(optimizer=optimizer_for(build_schedule("paper", "bp4d")[0]), objective=objective)
    else:
        keras.Model.compile(model, optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
                            jit_compile=False)
        model.objective = objective
    batch, size, rng = 9, model.config.crop_size, np.random.default_rng(0)
    images = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    targets = {"au": rng.integers(0, 2, (batch, model.config.num_aus)),
               "landmarks": rng.uniform(0.3 * size, 0.7 * size, (batch, 98)).astype(np.float32),
               "inter_ocular": np.full(batch, 0.3 * size, np.float32)}
    start = time.perf_counter()
    model.train_on_batch(images, targets)
    first = time.perf_counter() - start
    rest = median_seconds(lambda: model.train_on_batch(images, targets), 3 if quick else 20)
    return {"batch": batch, "first_step_s": first, "median_step_s": rest,
            "weight_tensors": len(model.trainable_variables)}


def run_child(mode: str, quick: bool, feature_stack: str) -> dict:
    if mode == "forms":
        result = forms_mode(quick)
    elif mode.startswith("first_step"):
        result = first_step_mode(mode, quick)
    else:
        result = network_mode(mode, quick, feature_stack)
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return result


def machine() -> str:
    import tensorflow as tf
    return (f"{os.cpu_count()} cores ({cpu_model()}), {platform.system()}, Python {platform.python_version()}, "
            f"TensorFlow {tf.__version__}, GPU: {bool(tf.config.list_physical_devices('GPU'))}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    parser.add_argument("--feature_stacks", type=number_list(str), default=["paper"],
                        help="layouts of the feature stacks to time the network modes with: "
                             "paper, caffe or both (paper,caffe)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.feature_stacks) - set(FEATURE_STACKS)
    if unknown:
        parser.error(f"--feature_stacks: {sorted(unknown)}; choose from {FEATURE_STACKS}")
    if args.child:
        print(json.dumps(run_child(args.child, args.quick, args.feature_stacks[0])))
        return
    results = {}
    for mode in args.modes:
        per_layout = args.feature_stacks if mode in NETWORK_MODES else ["paper"]
        for layout in per_layout:
            command = [sys.executable, "-m", "benchmarks.bench_network", "--child", mode,
                       "--feature_stacks", layout] + (["--quick"] if args.quick else [])
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            name = mode if per_layout == ["paper"] else f"{mode} ({layout} stacks)"
            results[name] = json.loads(output.strip().splitlines()[-1])
            print(name, json.dumps(results[name]), flush=True)
    print(json.dumps({"machine": machine(), "quick": args.quick, "results": results}, indent=2))


if __name__ == "__main__":
    main()
