"""Run the JAA-Net pipeline: preprocess -> train -> evaluate -> export.

    python run_pipeline.py --runner=DirectRunner                       # built-in synthetic data
    python run_pipeline.py --dataset bp4d --data_dir /data/BP4D --folds 1,2,3
    python run_pipeline.py --dataset disfa --data_dir /data/DISFA --init_from artifacts/models/bp4d
    python run_pipeline.py --dataset bp4d --stages import,export --import_release RUN_DIR \
        --import_epoch 5 --folds 3       # the authors' trained PyTorch model as fold 3's

Outputs under --output_dir (default ./artifacts):
    raw/synthetic/               the generated raw synthetic dataset (BP4D layout)
    examples/<dataset>/          aligned TFRecords per part, stats.json, manifest.json, rejected/
    models/<dataset>/fold<k>/    model.keras, checkpoints/, logs/ (TensorBoard), history.json
    eval/<dataset>/              metrics.json, report.md, attention figures
    serving/jaa_net/<version>/   the SavedModel for TF Serving
Every stage folder ends with _COMPLETE.json; a stage whose inputs and parameters are unchanged is
skipped (--force reruns), and a killed training run continues from its last checkpoint.
Flags this script does not know must be Beam's own, as its PipelineOptions define them
(--runner, --direct_num_workers, --project, ...): they go to the preprocessing job unchanged. Any
other flag is an error, and so is a value outside its flag's range.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from components.base.cli import add_flags, flags_given, list_type, value_type
from components.base.contract import NON_NEGATIVE, POSITIVE, POSITIVE_REAL, Rule
from components.startup import LOG_LEVELS
from components.train.component import TRAIN
from components.train.presets import AUXILIARY_FIELDS
from jaa_keras.config import FEATURE_STACKS, INITIALIZATIONS, LOCAL_MERGES
from schemas.face import ALIGNED_SIZE, DATASETS, PARTS

STAGES = ("preprocess", "train", "evaluate", "export")
IMPORT = "import"  # not in the default run: it replaces train with the authors' trained model

FOLD_RULE = Rule(lambda v: v in PARTS, "a fold number (1, 2 or 3)")
# The crop is cut from the aligned face; the second region layer needs a multiple of 16.
CROP = value_type(int, Rule(lambda v: v > 0 and v % 16 == 0 and v <= ALIGNED_SIZE,
                            f"a multiple of 16 from 16 to {ALIGNED_SIZE // 16 * 16}"))
POSITIVE_INT = value_type(int, POSITIVE)
WEIGHT = value_type(float, POSITIVE_REAL)
# The network's fields a flag may override, with their argparse settings (model_overrides).
MODEL_FLAGS = {
    "width_unit": {"type": POSITIVE_INT, "help": "override the network's width unit c"},
    "crop_size": {"type": CROP, "help": "override the crop (multiple of 16)"},
    "hidden_units": {"type": POSITIVE_INT, "help": "override the heads' hidden size d"},
    "local_merge": {"choices": LOCAL_MERGES,
                    "help": "override how the local AU branches merge: sum (the paper, Caffe) "
                            "or mean (the PyTorch release)"},
    "feature_stack": {"choices": FEATURE_STACKS,
                      "help": "override the layout of the high-level feature stacks: paper (the "
                              "paper's text and the PyTorch release; 5x5 outputs at crop 176) or "
                              "caffe (the Caffe release: stride 2 first; 3x3 outputs)"},
    "initialization": {"choices": INITIALIZATIONS,
                       "help": "override how fresh weights are drawn: caffe (the paper's "
                               "release), pytorch (PyTorch's defaults) or keras (Keras' "
                               "defaults)"},
    # RTATL's auxiliary tasks (--auxiliary): each applies only with its task.
    "inpainting_weight": {"type": WEIGHT, "help": "with --auxiliary inpainting: the weight of "
                          "its loss beside the AU loss (default 1)"},
    "inpainting_patch": {"type": value_type(float, Rule(lambda v: 0 < v <= 1,
                                                        "a share of the crop in (0, 1]")),
                         "help": "with --auxiliary inpainting: the side of a masked square "
                                 "around an AU centre, as a share of the crop (default 0.28, "
                                 "the attention box)"},
    "flow_weight": {"type": WEIGHT, "help": "with --auxiliary flow: the weight of its loss "
                    "beside the AU loss (default 1)"},
}


class _JobFlags:
    """Takes the preprocessing job's flag definitions (pipeline/options.py) into `group`, except
    those this script defines itself (--dataset, --data_dir, --output_dir, --force). Their default
    becomes None: a flag not given leaves the preprocess stage's default."""

    def __init__(self, group):
        self.group, self.dests = group, []

    def add_argument(self, *names, **kwargs):
        try:
            action = self.group.add_argument(*names, **{**kwargs, "default": None})
        except argparse.ArgumentError:  # "conflicting option string": one of this script's own
            return
        self.dests.append(action.dest)


def build_parser() -> argparse.ArgumentParser:
    from pipeline.options import PreprocessOptions
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], allow_abbrev=False,
        epilog="Beam's own flags (--runner, --direct_num_workers, --project, ...) go to the "
               "preprocessing job; any other flag is an error.")
    p.add_argument("--dataset", choices=DATASETS, default="synthetic")
    p.add_argument("--data_dir", help="the raw dataset folder (default for synthetic: "
                   "<output_dir>/raw/synthetic, generated there)")
    p.add_argument("--output_dir", default="artifacts")
    p.add_argument("--stages", default=",".join(STAGES),
                   help=f"comma-separated subset of {','.join(STAGES)}, or {IMPORT} in place "
                        "of train")
    p.add_argument("--folds", type=list_type(int, FOLD_RULE), default=None,
                   help="folds to train and evaluate (fold k tests on part k); default 1,2,3, "
                        "and 1 for the synthetic dataset (its 10-minute demo budget)")
    training = p.add_argument_group("training", "the train stage's parameters (its contract: "
                                    "components/train/component.py)")
    p.set_defaults(training_flags=tuple(add_flags(training, TRAIN)))
    for name, settings in MODEL_FLAGS.items():
        training.add_argument(f"--{name}", **settings)
    p.add_argument("--init_from", help="seed training from a trained model: a models/<dataset> "
                   "folder (fold k seeds fold k) or one fold folder")
    p.add_argument("--export_fold", type=value_type(int, FOLD_RULE), default=None,
                   help="fold whose model is exported (default: the first of --folds)")
    p.add_argument("--import_release", help="stage import: a run folder of the authors' "
                   "PyTorch-JAANet release (region_learning_<epoch>.pth ... au_net_<epoch>.pth)")
    p.add_argument("--import_epoch", type=value_type(int, NON_NEGATIVE),
                   help="stage import: the epoch of the files to import")
    p.add_argument("--force", action="store_true", help="rerun the selected stages")
    p.add_argument("--log_level", choices=LOG_LEVELS, default="INFO",
                   help="this pipeline's log messages: INFO adds the preprocessing job's "
                        "progress per sequence and its counters to the warnings")
    job_flags = _JobFlags(p.add_argument_group(
        "preprocessing", "the preprocess stage's options (python -m pipeline.job takes them too)"))
    PreprocessOptions._add_argparse_args(job_flags)
    p.set_defaults(preprocessing_flags=tuple(job_flags.dests))
    return p


def parse(argv):
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    if beam_args:
        from pipeline.options import refuse_unknown_flags
        refuse_unknown_flags(parser, beam_args)
    args.beam_args = beam_args
    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    if not args.stages:
        parser.error(f"--stages names no stage; choose from {','.join(STAGES)}")
    bad = [s for s in args.stages if s not in STAGES + (IMPORT,)]
    if bad:
        parser.error(f"unknown stage(s) {bad}; choose from {','.join(STAGES + (IMPORT,))}")
    if args.folds is None:
        args.folds = [1] if args.dataset == "synthetic" else list(PARTS)
    if args.export_fold is None:
        args.export_fold = args.folds[0]
    elif "train" in args.stages and args.export_fold not in args.folds:
        parser.error(f"--export_fold {args.export_fold} is not among --folds "
                     f"{','.join(map(str, args.folds))}, the folds this run trains; add it to "
                     "--folds or leave --export_fold out")
    if args.dataset != "synthetic" and not args.data_dir and "preprocess" in args.stages:
        parser.error(f"--data_dir is required for --dataset {args.dataset}")
    if "://" in args.output_dir and not args.data_dir and "preprocess" in args.stages:
        parser.error(f"--output_dir {args.output_dir} is a URL: give --data_dir, a local (or "
                     "mounted) folder for the raw data, generated there for the synthetic set")
    args.preprocessing = _preprocessing_parameters(parser, args)
    _check_import_flags(parser, args)
    _check_auxiliary_flags(parser, args)
    return args


def _check_auxiliary_flags(parser, args):
    """A flag of an auxiliary task without that task would be recorded but never used."""
    tasks = args.auxiliary or []
    if args.auxiliary_ratio is not None and not tasks:
        parser.error("--auxiliary_ratio applies with --auxiliary only")
    for task, fields in AUXILIARY_FIELDS.items():
        for field in fields:
            if getattr(args, field) is not None and task not in tasks:
                parser.error(f"--{field} applies with --auxiliary {task} only")


def _check_import_flags(parser, args):
    given = [f for f in ("import_release", "import_epoch") if getattr(args, f) is not None]
    if IMPORT not in args.stages:
        if given:
            parser.error(f"--{given[0]} is for --stages {IMPORT},...")
        return
    if len(given) < 2:
        parser.error(f"--stages {IMPORT} needs --import_release RUN_DIR and --import_epoch N")
    if "train" in args.stages:
        parser.error(f"--stages: {IMPORT} writes the model train would write; choose one")
    if len(args.folds) != 1:
        parser.error(f"--stages {IMPORT}: a release run folder holds one fold's model; name it "
                     "with --folds K (the part the run was not trained on: combine_1_2 is 3)")


def _preprocessing_parameters(parser, args) -> dict:
    """The preprocess stage's parameters from the preprocessing flags given."""
    from pipeline.options import SYNTHETIC_PREFIX, synthetic_fields
    given = {dest: getattr(args, dest) for dest in args.preprocessing_flags
             if getattr(args, dest) is not None}
    synthetic = synthetic_fields(given)
    given = {dest: value for dest, value in given.items() if not dest.startswith(SYNTHETIC_PREFIX)}
    if synthetic and args.dataset != "synthetic":
        parser.error(f"--{SYNTHETIC_PREFIX}{next(iter(synthetic))} applies to --dataset "
                     "synthetic only")
    if synthetic:
        from pipeline.synthetic import SyntheticSpec
        try:
            SyntheticSpec(**synthetic)
        except ValueError as e:
            parser.error(f"--{SYNTHETIC_PREFIX}* flags: {e}")
    return {**given, "synthetic": synthetic or None}


class Layout:
    """The stage folders under --output_dir (a local folder or a URL such as gs://bucket/run)."""

    def __init__(self, root: str, dataset: str):
        from components.base import files
        self.root = files.normalise(root)
        self.raw = files.join(self.root, "raw", "synthetic")
        self.examples = files.join(self.root, "examples", dataset)
        self.models = files.join(self.root, "models", dataset)
        self.eval = files.join(self.root, "eval", dataset)
        self.serving = files.join(self.root, "serving", "jaa_net")

    def fold(self, k: int) -> str:
        from components.base import files
        return files.join(self.models, f"fold{k}")


def _init_from(path: str | None, fold: int) -> Path | None:
    if not path:
        return None
    from components.base import UserError
    root = Path(path)
    if (root / f"fold{fold}" / "model.keras").is_file():
        return root / f"fold{fold}"
    if (root / "model.keras").is_file():
        return root
    raise UserError(f"--init_from {path}: neither {root / f'fold{fold}' / 'model.keras'} nor "
                    f"{root / 'model.keras'} exists; give a trained models/<dataset> folder")


def train_parameters(args, fold: int) -> dict:
    """The train stage's parameters for one fold, from the flags (a flag not given leaves the
    stage's or the preset's value)."""
    params = {"dataset": args.dataset, "fold": fold, **flags_given(args, args.training_flags),
              "model_overrides": flags_given(args, MODEL_FLAGS)}
    if "verbose" not in params and sys.stdout.isatty():
        params["verbose"] = 1
    return params


def run(args) -> dict:
    from components.base import Artifact, run_stage
    lay = Layout(args.output_dir, args.dataset)
    results = {}
    t_total = time.perf_counter()
    timings = {}

    if "preprocess" in args.stages:
        from components.preprocess.component import PREPROCESS
        t0 = time.perf_counter()
        results["preprocess"] = run_stage(
            PREPROCESS, outputs={"examples": lay.examples}, force=args.force,
            parameters={"dataset": args.dataset,
                        "data_dir": str(Path(args.data_dir or lay.raw).resolve()),  # local
                        "beam_args": list(args.beam_args), **args.preprocessing})
        timings["preprocess"] = time.perf_counter() - t0

    trained = {}
    if IMPORT in args.stages:
        from components.import_release.component import run_import
        t0 = time.perf_counter()
        results[IMPORT] = run_import(
            release_dir=args.import_release, epoch=args.import_epoch, dataset=args.dataset,
            fold=args.folds[0], output=lay.fold(args.folds[0]), force=args.force)
        timings[IMPORT] = time.perf_counter() - t0
    if "train" in args.stages:
        from components.train.component import TRAIN
        t0 = time.perf_counter()
        for k in args.folds:
            trained[k] = run_stage(
                TRAIN, inputs={"examples": lay.examples, "init_from": _init_from(args.init_from, k)},
                outputs={"model": lay.fold(k)}, parameters=train_parameters(args, k),
                force=args.force)
        results["train"] = trained
        timings["train"] = time.perf_counter() - t0

    if "evaluate" in args.stages:
        from components.evaluate.component import run_evaluate
        t0 = time.perf_counter()
        results["evaluate"] = run_evaluate(
            examples=lay.examples, models={k: lay.fold(k) for k in args.folds},
            output=lay.eval, dataset=args.dataset, force=args.force)
        timings["evaluate"] = time.perf_counter() - t0
    if "export" in args.stages:
        from components.export.component import run_export
        t0 = time.perf_counter()
        results["export"] = run_export(
            model=lay.fold(args.export_fold), output=lay.serving, dataset=args.dataset,
            evaluation=lay.eval if Artifact(lay.eval).is_complete() else None,
            examples=lay.examples if Artifact(lay.examples).is_complete() else None,
            force=args.force)
        timings["export"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_total
    _print_summary(args, lay, results, timings)
    return {"results": results, "timings": timings, "layout": lay}


def _print_summary(args, lay, results, timings):
    print("\n" + "=" * 72)
    print(f"JAA-Net pipeline, dataset {args.dataset}, folds {args.folds} "
          f"({timings['total']:.0f} s)")
    if "preprocess" in results:
        r = results["preprocess"]
        s = r.summary
        print(f"  preprocess  {r.status:7s} {lay.examples}  ({s.get('examples_total', '?')} "
              f"examples, {s.get('rejected_total', '?')} rejected)")
    if IMPORT in results:
        r = results[IMPORT]
        print(f"  import      {r.status:7s} {r.outputs['model'].uri}  (epoch "
              f"{args.import_epoch} of {args.import_release})")
    for k, r in results.get("train", {}).items():
        s = r.summary
        print(f"  train       {r.status:7s} {r.outputs['model'].uri}  ({s.get('epochs')} epochs, "
              f"{s.get('seconds', 0):.0f} s)")
    if "evaluate" in results:
        r = results["evaluate"]
        print(f"  evaluate    {r.status:7s} {r.outputs['evaluation'].uri}  (report.md, metrics.json)")
    if "export" in results:
        r = results["export"]
        print(f"  export      {r.status:7s} {r.outputs['saved_model'].uri}")
    if "evaluate" in results:
        s = results["evaluate"].summary
        print(f"\n  held-out mean over folds {s.get('folds')}: average F1 {s.get('mean_f1', 0):.3f}, "
              f"accuracy {s.get('mean_accuracy', 0):.3f}, landmark mean error "
              f"{s.get('landmark_mean_error', 0):.4f}, failure rate "
              f"{s.get('landmark_failure_rate', 0):.3f}")
    print("  stage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    print("=" * 72)


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    from components.startup import configure_logging, import_tensorflow_quietly
    configure_logging(args.log_level)
    import_tensorflow_quietly()
    from components.base import UserError
    try:
        run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to continue (training resumes from its "
              "last checkpoint)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
