"""The stage framework: contracts, completion records, skipping, --force, resume, safety."""
import functools
import json
from pathlib import Path

import pytest

from components import base
from components.base import (COMPLETION_FILE, STARTED_FILE, Artifact, ArtifactMismatchError,
                             IncompleteArtifactError, InputSpec, Parameter, ParameterError,
                             StageSpec, run_stage)

CALLS = []


def _write_numbers(inputs, outputs, params):
    CALLS.append(("numbers", params))
    out = outputs["numbers"].path
    (out / "numbers.txt").write_text("\n".join(str(i) for i in range(params["count"])))
    return {"count": params["count"]}


def _sum_numbers(inputs, outputs, params):
    CALLS.append(("sum", params))
    numbers = (inputs["numbers"].path / "numbers.txt").read_text().split()
    total = sum(int(n) for n in numbers) * params["scale"]
    (outputs["total"].path / "total.json").write_text(json.dumps(total))
    return {"total": total}


NUMBERS = StageSpec(
    name="numbers", inputs=(), outputs=("numbers",),
    parameters=(Parameter("dataset", str, identity=True), Parameter("count", int, 5),
                Parameter("verbose", int, 0, cache=False)),
    executor=_write_numbers)
SUM = StageSpec(
    name="sum", inputs=(InputSpec("numbers"), InputSpec("extra", optional=True)),
    outputs=("total",), parameters=(Parameter("scale", float, 1.0),),
    executor="tests.components.test_base:_sum_numbers")


@pytest.fixture(autouse=True)
def _clear_calls():
    CALLS.clear()


def _run_numbers(tmp_path, **params):
    params.setdefault("dataset", "synthetic")
    force = params.pop("force", False)
    return run_stage(NUMBERS, outputs={"numbers": tmp_path / "numbers"}, parameters=params,
                     force=force, log=None)


def test_completion_record_written_last_with_its_fields(tmp_path):
    result = _run_numbers(tmp_path, count=3)
    assert result.status == "ran"
    record = json.loads((tmp_path / "numbers" / COMPLETION_FILE).read_text())
    assert record["stage"] == "numbers"
    assert record["parameters"] == {"dataset": "synthetic", "count": 3}  # verbose: not cached
    assert record["identity"] == {"dataset": "synthetic"}
    assert record["summary"] == {"count": 3}
    assert "python" in record["versions"] and record["timings"]["seconds"] >= 0
    assert not (tmp_path / "numbers" / STARTED_FILE).exists()


def test_same_parameters_skip_and_force_reruns(tmp_path):
    _run_numbers(tmp_path)
    assert _run_numbers(tmp_path).status == "skipped"
    assert _run_numbers(tmp_path, verbose=2).status == "skipped"  # not a cache parameter
    assert len(CALLS) == 1
    assert _run_numbers(tmp_path, force=True).status == "ran"
    assert _run_numbers(tmp_path, count=4).status == "ran"
    assert len(CALLS) == 3
    assert (tmp_path / "numbers" / "numbers.txt").read_text().split() == ["0", "1", "2", "3"]


def test_downstream_reruns_when_upstream_reruns(tmp_path):
    _run_numbers(tmp_path)
    run = lambda: run_stage(SUM, inputs={"numbers": tmp_path / "numbers"},  # noqa: E731
                            outputs={"total": tmp_path / "total"}, log=None)
    assert run().summary == {"total": 10}
    assert run().status == "skipped"
    _run_numbers(tmp_path, count=6)
    result = run()
    assert result.status == "ran" and result.summary == {"total": 15}
    assert result.records["total"]["inputs"]["numbers"] == Artifact(tmp_path / "numbers").fingerprint()


def test_incomplete_input_is_never_read(tmp_path):
    (tmp_path / "numbers").mkdir()
    (tmp_path / "numbers" / "numbers.txt").write_text("1 2 3")
    with pytest.raises(IncompleteArtifactError, match=r"numbers.*incomplete"):
        run_stage(SUM, inputs={"numbers": tmp_path / "numbers"},
                  outputs={"total": tmp_path / "total"}, log=None)
    with pytest.raises(IncompleteArtifactError, match="does not exist"):
        run_stage(SUM, inputs={"numbers": tmp_path / "nowhere"},
                  outputs={"total": tmp_path / "total"}, log=None)
    assert CALLS == []


def test_a_failed_run_leaves_the_previous_output_complete_and_its_own_work_incomplete(tmp_path):
    _run_numbers(tmp_path)

    def boom(inputs, outputs, params):
        (outputs["numbers"].path / "numbers.txt").write_text("half")
        raise RuntimeError("boom")
    spec = StageSpec("numbers", (), ("numbers",), NUMBERS.parameters, boom)
    with pytest.raises(RuntimeError):
        run_stage(spec, outputs={"numbers": tmp_path / "numbers"},
                  parameters={"dataset": "synthetic", "count": 9}, log=None)
    folder = Artifact(tmp_path / "numbers")
    assert folder.record()["parameters"]["count"] == 5            # the earlier output, intact
    assert (folder / "numbers.txt").read_text().split() == ["0", "1", "2", "3", "4"]
    staged = Artifact(folder / "_STAGING")                        # the failed run: incomplete
    assert not staged.is_complete() and staged.started_record()["parameters"]["count"] == 9
    assert _run_numbers(tmp_path).status == "skipped"             # still the output for count 5
    assert _run_numbers(tmp_path, count=2).status == "ran"
    assert not (folder / "_STAGING").exists()


def test_resumable_stage_keeps_its_unfinished_folder(tmp_path):
    seen = []

    def step(inputs, outputs, params):
        marker = outputs["out"].path / "epoch1"
        seen.append(marker.exists())
        if not marker.exists():
            marker.write_text("done")
            raise KeyboardInterrupt  # killed after "epoch 1"
        return {}
    spec = StageSpec("train", (), ("out",), (Parameter("lr", float, 0.1),), step, resumable=True)
    with pytest.raises(KeyboardInterrupt):
        run_stage(spec, outputs={"out": tmp_path / "out"}, log=None)
    run_stage(spec, outputs={"out": tmp_path / "out"}, log=None)
    assert seen == [False, True]
    # Different parameters: the unfinished folder is not reused.
    spec2 = StageSpec("train", (), ("out",), (Parameter("lr", float, 0.1),), step, resumable=True)
    (tmp_path / "out" / COMPLETION_FILE).unlink()
    (tmp_path / "out" / STARTED_FILE).write_text(json.dumps({"cache_key": "other"}))
    with pytest.raises(KeyboardInterrupt):
        run_stage(spec2, outputs={"out": tmp_path / "out"}, log=None)
    assert seen[-1] is False


def test_parameters_are_checked(tmp_path):
    with pytest.raises(ParameterError, match="required"):
        run_stage(NUMBERS, outputs={"numbers": tmp_path / "n"}, log=None)
    with pytest.raises(ParameterError, match="no parameter"):
        _run_numbers(tmp_path, colour="red")
    with pytest.raises(ParameterError, match="must be int"):
        _run_numbers(tmp_path, count="many")
    assert SUM.resolve({"scale": 2}) == {"scale": 2.0}
    assert "param  count: int (default 5)" in NUMBERS.describe()


def test_output_folder_of_another_dataset_or_foreign_folder_is_refused(tmp_path):
    _run_numbers(tmp_path, dataset="bp4d")
    with pytest.raises(ArtifactMismatchError, match=r"holds dataset 'bp4d'.*_COMPLETE.json"):
        _run_numbers(tmp_path, dataset="disfa")
    with pytest.raises(ArtifactMismatchError):
        _run_numbers(tmp_path, dataset="disfa", force=True)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(ArtifactMismatchError, match="not written by this pipeline"):
        run_stage(NUMBERS, outputs={"numbers": foreign}, parameters={"dataset": "x"}, log=None)
    assert (foreign / "thesis.tex").exists()


def test_corrupt_completion_record_is_a_clear_error(tmp_path):
    _run_numbers(tmp_path)
    (tmp_path / "numbers" / COMPLETION_FILE).write_text("{not json")
    with pytest.raises(base.UserError, match=r"_COMPLETE.json is not valid JSON"):
        Artifact(tmp_path / "numbers").record()


def _copy_raw(inputs, outputs, params):
    """A preprocess-like stage: reads a folder that no stage wrote (params["raw"])."""
    text = (Path(params["raw"]) / "frames.txt").read_text()
    (outputs["examples"].path / "examples.txt").write_text(text.upper())
    return {"lines": len(text.splitlines())}


def _fingerprint_raw(params):
    raw = Path(params["raw"]) / "frames.txt"
    if not raw.is_file():
        raise base.UserError(f"{raw} is missing: give a raw dataset folder")
    return {"raw": raw.read_text()}


def _examples_whole(artifact):
    return (artifact.path / "examples.txt").is_file()


PREPROCESS_LIKE = StageSpec(
    "preprocess", (), ("examples",),
    (Parameter("dataset", str, identity=True), Parameter("raw", str)), _copy_raw,
    read_sources=_fingerprint_raw, verify_output=_examples_whole)


def test_a_value_outside_its_rule_is_refused_from_code_as_on_the_command_line(tmp_path):
    """The rule a flag checks (components/base/cli.py) holds when a stage is called from code."""
    from components.base.contract import POSITIVE, POSITIVE_REAL, Rule
    spec = StageSpec("numbers", (), ("numbers",), (
        Parameter("count", int, rule=POSITIVE),
        Parameter("rates", list, [1.0], item=float, rule=POSITIVE_REAL,
                  whole=Rule(lambda v: len(v) <= 3, "lists more than 3 values")),
    ), _write_numbers)
    out = {"numbers": tmp_path / "numbers"}
    with pytest.raises(ParameterError, match=r"'count' must be a positive integer, got 0"):
        run_stage(spec, outputs=out, parameters={"count": 0}, log=None)
    with pytest.raises(ParameterError, match=r"'rates': each value must be a finite number > 0, "
                                             r"got nan"):
        run_stage(spec, outputs=out, parameters={"count": 1, "rates": [0.1, float("nan")]},
                  log=None)
    with pytest.raises(ParameterError, match=r"'rates' \[1.0, 1.0, 1.0, 1.0\] lists more than 3"):
        run_stage(spec, outputs=out, parameters={"count": 1, "rates": [1, 1, 1, 1]}, log=None)
    assert not (tmp_path / "numbers").exists()
    assert run_stage(spec, outputs=out, parameters={"count": 2, "rates": [1, 0.5]},
                     log=None).summary == {"count": 2}


def test_a_source_folder_is_checked_and_fingerprinted_and_a_broken_output_rebuilt(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "examples"
    run = lambda: run_stage(PREPROCESS_LIKE, outputs={"examples": out}, log=None,  # noqa: E731
                            parameters={"dataset": "bp4d", "raw": str(raw)})
    with pytest.raises(base.UserError, match="frames.txt is missing"):
        run()
    assert not out.exists()  # checked before any folder was made
    raw.mkdir()
    (raw / "frames.txt").write_text("a\nb\n")
    assert run().status == "ran"
    assert run().status == "skipped"
    (raw / "frames.txt").write_text("a\nb\nc\n")  # the raw data changed: redone
    assert run().summary == {"lines": 3}
    (out / "examples.txt").unlink()                 # the output lost a file: rebuilt
    assert run().status == "ran" and (out / "examples.txt").read_text() == "A\nB\nC\n"


def test_an_input_of_another_kind_or_dataset_is_refused(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "frames.txt").write_text("a\n")
    run_stage(PREPROCESS_LIKE, outputs={"examples": tmp_path / "examples"}, log=None,
              parameters={"dataset": "bp4d", "raw": str(raw)})
    _run_numbers(tmp_path)
    train = StageSpec("train", (InputSpec("examples", produced_by=("preprocess",),
                                          same=("dataset",)),), ("model",),
                      (Parameter("dataset", str, identity=True),), lambda *a: {})
    with pytest.raises(ArtifactMismatchError, match=r"output of the numbers stage .* not of "
                                                    r"preprocess"):
        run_stage(train, inputs={"examples": tmp_path / "numbers"},
                  outputs={"model": tmp_path / "m"}, parameters={"dataset": "bp4d"}, log=None)
    with pytest.raises(ArtifactMismatchError, match=r"holds the 'bp4d' dataset .* not 'disfa'"):
        run_stage(train, inputs={"examples": tmp_path / "examples"},
                  outputs={"model": tmp_path / "m"}, parameters={"dataset": "disfa"}, log=None)
    assert not (tmp_path / "m").exists()


def _write_lines(inputs, outputs, params):
    from components.base import files
    files.write_json_atomic(outputs["lines"].join("lines.json"), list(range(params["count"])))
    return {"count": params["count"]}


def test_stages_write_a_folder_that_is_not_on_the_local_disk():
    """TensorFlow's in-memory file system stands for a bucket (gs://): records, skipping, and a
    changed run built beside the complete output, then moved into its place."""
    from components.base import files
    spec = StageSpec("lines", (), ("lines",), (Parameter("count", int),), _write_lines)
    folder = "ram://bucket/run one/lines"
    assert run_stage(spec, outputs={"lines": folder}, parameters={"count": 3}, log=None).status \
        == "ran"
    assert run_stage(spec, outputs={"lines": folder}, parameters={"count": 3}, log=None).skipped
    messages = []
    run_stage(spec, outputs={"lines": folder}, parameters={"count": 5}, log=messages.append)
    assert files.read_json(folder + "/lines.json") == [0, 1, 2, 3, 4]
    assert Artifact(folder).summary == {"count": 5}
    assert sorted(files.listdir(folder)) == ["_COMPLETE.json", "lines.json"]
    assert any("built in ram://bucket/run one/lines/_STAGING" in m for m in messages)


# ----------------------------------------------------------------------------------------------
# Work is not thrown away without a word, and the previous output stays until the new one is done
def _counting_stage(fail_at=None):
    """A "training" stage: one file per epoch; resumes from the files already there."""
    def train(inputs, outputs, params):
        out = outputs["out"].path
        for epoch in range(1, params["epochs"] + 1):
            if (out / f"epoch{epoch}").exists():
                continue
            if epoch == fail_at:
                raise KeyboardInterrupt(f"killed in epoch {epoch}")
            (out / f"epoch{epoch}").write_text(str(params["lr"]))
        (out / "model.txt").write_text(f"{params['epochs']} epochs at {params['lr']}")
        return {"epochs": params["epochs"]}
    return StageSpec("train", (InputSpec("numbers"),), ("out",),
                     (Parameter("epochs", int, 3), Parameter("lr", float, 0.1)), train,
                     resumable=True, describe_work=_epochs_in)


def _epochs_in(folder):
    return f"epochs {sorted(p.name for p in folder.glob('epoch*'))}"


def _trainer(tmp_path, log=None):
    """run(stage, **parameters) of a counting stage into tmp_path/out, on a numbers output."""
    _run_numbers(tmp_path)

    def run(spec, **params):
        return run_stage(spec, inputs={"numbers": tmp_path / "numbers"},
                         outputs={"out": tmp_path / "out"}, parameters=params, log=log)
    return run


def test_a_changed_parameter_says_what_changed_and_what_is_discarded(tmp_path):
    out, logged = tmp_path / "out", []
    run = _trainer(tmp_path, logged.append)
    with pytest.raises(KeyboardInterrupt):          # killed in epoch 3 of 4
        run(_counting_stage(fail_at=3), epochs=4)
    assert (out / "epoch2").exists() and not Artifact(out).is_complete()
    logged.clear()
    with pytest.raises(KeyboardInterrupt):          # one flag changed: the old run is kept aside
        run(_counting_stage(fail_at=2), epochs=4, lr=0.5)
    message = " ".join(logged)
    assert "an unfinished run started" in message and "epoch1" in message and "epoch2" in message
    assert "lr 0.1 -> 0.5" in message and "stays until the new output" in message
    assert (out / "epoch2").exists()                # the checkpoints of the first run are there
    # Back to the first run's flags: it continues from its epoch 2 instead of starting over.
    logged.clear()
    assert run(_counting_stage(), epochs=4).status == "ran"
    assert (out / "model.txt").read_text() == "4 epochs at 0.1" and Artifact(out).is_complete()
    assert any("resuming the unfinished run in" in m for m in logged)
    assert any("discarding an unfinished run" in m and "['epoch1']" in m and "lr 0.5 -> 0.1" in m
               for m in logged)   # the run with lr 0.5, in _STAGING
    assert not (out / "_STAGING").exists()


def test_the_previous_output_stays_complete_until_the_new_one_is(tmp_path):
    out, logged = tmp_path / "out", []
    run = _trainer(tmp_path, logged.append)
    run(_counting_stage(), epochs=2)
    finished = Artifact(out).record()["timings"]["finished_at"]
    logged.clear()
    with pytest.raises(KeyboardInterrupt):          # a retraining with more epochs is killed
        run(_counting_stage(fail_at=3), epochs=4)
    assert f"holds the complete output of {finished}" in logged[0]
    assert "epochs 2 -> 4" in logged[0]
    assert Artifact(out).record()["parameters"]["epochs"] == 2   # still complete, still readable
    assert (out / "model.txt").read_text() == "2 epochs at 0.1"
    # The retraining resumes in the staging folder, then replaces the old output in one go.
    assert run(_counting_stage(), epochs=4).status == "ran"
    assert (out / "model.txt").read_text() == "4 epochs at 0.1"
    assert sorted(p.name for p in out.iterdir()) == [
        COMPLETION_FILE, "epoch1", "epoch2", "epoch3", "epoch4", "model.txt"]
    assert any(f"replaced the previous output in {out} (completed {finished})" in m
               for m in logged)


def test_a_run_killed_while_moving_its_output_into_place_is_finished_by_the_next(tmp_path):
    run = functools.partial(_trainer(tmp_path), _counting_stage())
    run(epochs=3)
    real_replace = base.files.os.replace
    moved = []

    def die_after_two_moves(src, dst):
        if Path(src).parent.name == "_STAGING":   # a move of the staged output into place
            if len(moved) == 2:
                raise KeyboardInterrupt("killed while moving")
            moved.append(src)
        real_replace(src, dst)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(base.files.os, "replace", die_after_two_moves)
        with pytest.raises(KeyboardInterrupt):
            run(epochs=2, lr=0.2)
    assert not Artifact(tmp_path / "out").is_complete()
    assert run(epochs=2, lr=0.2).status == "skipped"     # the move was finished, nothing redone
    out = tmp_path / "out"
    assert (out / "model.txt").read_text() == "2 epochs at 0.2"
    assert sorted(p.name for p in out.iterdir()) == [COMPLETION_FILE, "epoch1", "epoch2",
                                                      "model.txt"]


def test_a_touched_timestamp_upstream_changes_nothing_downstream(tmp_path):
    _run_numbers(tmp_path)
    total = lambda: run_stage(SUM, inputs={"numbers": tmp_path / "numbers"},  # noqa: E731
                              outputs={"total": tmp_path / "total"}, log=None)
    total()
    record_file = tmp_path / "numbers" / COMPLETION_FILE
    record = json.loads(record_file.read_text())
    record["timings"]["finished_at"] = "2030-01-01T00:00:00+00:00"
    record["versions"]["numpy"] = "0.0"
    record_file.write_text(json.dumps(record))
    assert total().status == "skipped"
    _run_numbers(tmp_path, force=True)                  # a rerun is another artifact
    assert total().status == "ran"
    # Records made before this rule (format 1) keep the fingerprint they had then, the hash of
    # the whole record, which their downstream records hold: nothing reruns after an upgrade.
    record = json.loads(record_file.read_text())
    record["format"] = 1
    record_file.write_text(json.dumps(record))
    assert Artifact(tmp_path / "numbers").fingerprint() == base.canonical_hash(record)


# ----------------------------------------------------------------------------------------------
# Paths are data; one writer per folder; records readable by the group
def test_an_output_path_with_a_wildcard_is_refused_and_nothing_is_touched(tmp_path):
    for sibling in ("exp1", "exp2"):
        run_stage(NUMBERS, outputs={"numbers": tmp_path / sibling / "numbers"},
                  parameters={"dataset": "synthetic"}, log=None)
    for name in ("exp*", "exp[12]", "exp?"):
        with pytest.raises(base.UserError, match=r"contains .*wildcards.*without \* \? \["):
            run_stage(NUMBERS, outputs={"numbers": tmp_path / name / "numbers"},
                      parameters={"dataset": "synthetic", "count": 2}, log=None)
        assert not (tmp_path / name).exists()
    for sibling in ("exp1", "exp2"):
        assert Artifact(tmp_path / sibling / "numbers").summary == {"count": 5}


def test_odd_but_literal_characters_in_paths_work(tmp_path):
    folder = tmp_path / "my run's \"ünï\" {1} (2) ]"
    run_stage(NUMBERS, outputs={"numbers": folder / "numbers"},
              parameters={"dataset": "synthetic"}, log=None)
    result = run_stage(SUM, inputs={"numbers": folder / "numbers"},
                       outputs={"total": folder / "total"}, log=None)
    assert result.summary == {"total": 10}


_HOLD_LOCK = """
import sys
from components.base import folder_lock
with folder_lock(sys.argv[1], shared=sys.argv[2] == "read"):
    print("locked", flush=True)
    sys.stdin.read()
"""


def _lock_holder(folder, mode="write"):
    """Another process holding the folder's lock until its stdin is closed."""
    import subprocess
    import sys
    process = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(folder), mode],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_folder_being_read_is_not_rewritten_and_one_being_written_is_not_read(tmp_path):
    _run_numbers(tmp_path)
    total = lambda: run_stage(SUM, inputs={"numbers": tmp_path / "numbers"},  # noqa: E731
                              outputs={"total": tmp_path / "total"}, log=None)
    reader = _lock_holder(tmp_path / "numbers", "read")
    try:
        assert total().summary == {"total": 10}          # readers share the folder
        busy = rf"numbers is being read by another run \(process id {reader.pid}\)"
        with pytest.raises(base.FolderBusyError, match=busy):
            _run_numbers(tmp_path, count=7)
    finally:
        reader.stdin.close()
        reader.wait(timeout=30)
    writer = _lock_holder(tmp_path / "numbers")
    try:
        with pytest.raises(base.FolderBusyError, match=rf"process id {writer.pid}, since"):
            total()
    finally:
        writer.stdin.close()
        writer.wait(timeout=30)
    assert _run_numbers(tmp_path, count=7).status == "ran" and total().summary == {"total": 21}
    assert not (tmp_path / "numbers" / base.LOCK_FILE).exists()


def test_a_second_run_into_a_locked_folder_is_refused_naming_the_holder(tmp_path):
    _run_numbers(tmp_path)
    holder = _lock_holder(tmp_path / "numbers")
    try:
        with pytest.raises(base.FolderBusyError,
                           match=rf"numbers is being written by another run \(process id "
                                 rf"{holder.pid}, since .*\); wait for it"):
            _run_numbers(tmp_path, count=7)
        assert Artifact(tmp_path / "numbers").summary == {"count": 5}  # untouched
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert _run_numbers(tmp_path, count=7).status == "ran"          # released: free again
    assert not (tmp_path / "numbers" / base.LOCK_FILE).exists()


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path):
    import signal
    holder = _lock_holder(tmp_path / "numbers")
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert (tmp_path / "numbers" / base.LOCK_FILE).exists()        # left behind
    logged = []
    run_stage(NUMBERS, outputs={"numbers": tmp_path / "numbers"},
              parameters={"dataset": "synthetic"}, log=logged.append)
    assert Artifact(tmp_path / "numbers").is_complete()
    assert any("taking over the lock" in m and f"process id {holder.pid}" in m for m in logged)


def test_records_are_readable_per_umask(tmp_path):
    import os
    old = os.umask(0o022)
    try:
        _run_numbers(tmp_path)
        base.write_json_atomic(tmp_path / "other.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "numbers" / COMPLETION_FILE).stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "other.json").stat().st_mode & 0o777 == 0o644


def test_train_names_the_checkpoints_that_a_discard_would_lose(tmp_path):
    from components.train.component import TRAIN
    fold = tmp_path / "fold1"
    for epoch in (2, 3):
        (fold / "checkpoints" / f"epoch-00{epoch}").mkdir(parents=True)
        (fold / "checkpoints" / f"epoch-00{epoch}" / "state.json").write_text(
            json.dumps({"global_epoch": epoch}))
    (fold / "checkpoints" / "epoch-004").mkdir()      # killed while writing: not counted
    describe = base.contract.load(TRAIN.describe_work)
    assert describe(fold) == "checkpoints up to epoch 3"
    (fold / "model.keras").write_bytes(b"")
    assert describe(fold) == "model.keras, checkpoints up to epoch 3"
    assert describe(tmp_path / "empty") is None
