"""The stage framework: contracts, completion records, skipping, --force, resume, safety."""
import json

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
    executor="tests.test_components_base:_sum_numbers")


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


def test_failed_executor_leaves_an_incomplete_folder(tmp_path):
    _run_numbers(tmp_path)

    def boom(inputs, outputs, params):
        raise RuntimeError("boom")
    spec = StageSpec("numbers", (), ("numbers",), NUMBERS.parameters, boom)
    with pytest.raises(RuntimeError):
        run_stage(spec, outputs={"numbers": tmp_path / "numbers"},
                  parameters={"dataset": "synthetic", "count": 9}, log=None)
    assert not Artifact(tmp_path / "numbers").is_complete()
    assert _run_numbers(tmp_path).status == "ran"  # not mistaken for the earlier complete output


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


def test_self_managed_stage_keeps_its_own_record_and_reports_skips(tmp_path):
    """E.g. the Beam job: it caches itself and writes the completion record in this format."""
    from components.base import write_completion_record
    calls = []

    def job(inputs, outputs, params):
        calls.append(params["_force"])
        out = outputs["examples"].path
        if Artifact(out).is_complete() and not params["_force"]:
            return {"status": "skipped"}
        out.mkdir(parents=True, exist_ok=True)
        write_completion_record(out, stage="preprocess", parameters={"dataset": params["dataset"]},
                                identity={"dataset": params["dataset"]}, summary={"n": 1})
        return {"status": "ran", "n": 1}
    spec = StageSpec("preprocess", (), ("examples",), (Parameter("dataset", str, identity=True),),
                     job, self_managed=True)
    run = lambda **kw: run_stage(spec, outputs={"examples": tmp_path / "ex"},  # noqa: E731
                                 parameters={"dataset": "synthetic"}, log=None, **kw)
    assert run().status == "ran"
    assert run().status == "skipped"
    assert run(force=True).status == "ran"
    assert calls == [False, False, True]
    assert Artifact(tmp_path / "ex").summary == {"n": 1}
