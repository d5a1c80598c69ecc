"""What the benchmarks share: the machine's name, list flags, held-out scoring, and writing runs."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Callable, Iterable


def cpu_model() -> str:
    """The CPU's model name: figures from two machines of the same kind differ by 2x (README)."""
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def cpu_summary() -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores"


def number_list(kind: Callable) -> Callable[[str], list]:
    """An argparse type for comma-separated values: "8,2,2" -> [8, 2, 2]."""
    return lambda text: [kind(v) for v in text.split(",")]


def output_folder(path: str) -> Path:
    """The benchmark's --output_dir, made if missing."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def centre_crops(model, examples: Path, parts):
    """The examples of `parts` as the evaluate stage sees them: centre crops for `model`, in
    batches of 32, in file order."""
    from components.train import input_pipeline as ip
    return ip.make_dataset(ip.part_files(examples, parts), model.config.num_aus,
                           model.config.crop_size, training=False, batch_size=32)


def held_out_scores(model, examples: Path) -> dict:
    """The model's scores on fold 1's held-out part 1 (centre crops), in the model's precision."""
    from components.train.trainer import evaluate_model
    return evaluate_model(model, centre_crops(model, examples, [1]))


def record_runs(runs: Iterable[dict], path: Path) -> list[dict]:
    """Every run as it finishes: printed, and the list so far rewritten to `path` (JSON), so that
    a benchmark cut short keeps what it measured."""
    done = []
    for run in runs:
        done.append(run)
        print(json.dumps(run), flush=True)
        path.write_text(json.dumps(done, indent=2))
    return done


def write_table(table: str, path: Path, *others: Path):
    path.write_text(table)
    print(table)
    print(f"wrote {', '.join(str(p) for p in (path, *others))}")
