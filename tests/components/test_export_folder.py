"""The serving folder under concurrent and killed exports: one export at a time, nothing half
left behind. The SavedModel writer is replaced by a small one: what is tested is the folder."""
import dataclasses
import signal
import subprocess
import sys

import pytest

from components.base import LOCK_FILE, Artifact, FolderBusyError
from components.export import component
from tests._tiny_records import train_artifact

# Runs an export whose executor writes part of a SavedModel and then hangs, as if killed there.
_HANGING_EXPORT = """
import dataclasses, sys, time
from components.export import component

def executor(inputs, outputs, parameters):
    (outputs["saved_model"].path / "saved_model.pb").write_bytes(b"half")
    print("writing", flush=True)
    time.sleep(600)

component.EXPORT = dataclasses.replace(component.EXPORT, executor=executor)
component.run_export(model=sys.argv[1], output=sys.argv[2], dataset="synthetic", log=None)
"""


def _small_saved_model(inputs, outputs, parameters):
    (outputs["saved_model"].path / "saved_model.pb").write_bytes(b"complete")
    return {"version": parameters["version"]}


def test_a_second_export_is_refused_and_a_killed_one_is_cleaned_up(tmp_path, monkeypatch):
    model_file = tmp_path / "model.keras"
    model_file.write_bytes(b"not loaded by the small writer")
    model = train_artifact(tmp_path / "fold1", model_file)
    serving = tmp_path / "serving" / "jaa_net"
    first = subprocess.Popen([sys.executable, "-c", _HANGING_EXPORT, str(model), str(serving)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "writing"
        monkeypatch.setattr(component, "EXPORT",
                            dataclasses.replace(component.EXPORT, executor=_small_saved_model))
        with pytest.raises(FolderBusyError, match=rf"jaa_net is being written by another run "
                                                  rf"\(process id {first.pid}, since"):
            component.run_export(model=model, output=serving, dataset="synthetic", log=None)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    assert (serving / ".staging-1" / "saved_model.pb").read_bytes() == b"half"

    logged = []
    result = component.run_export(model=model, output=serving, dataset="synthetic",
                                  log=logged.append)
    assert result.outputs["saved_model"].path == serving / "1"
    assert (serving / "1" / "saved_model.pb").read_bytes() == b"complete"
    assert Artifact(serving / "1").is_complete()
    assert sorted(p.name for p in serving.iterdir()) == ["1"]   # no staging, no lock file left
    assert any(f"removing {serving / '.staging-1'}, left by an export that did not finish" in m
               and f"process id {first.pid}" in m for m in logged)
    assert any("taking over the lock" in m for m in logged)


def test_a_foreign_staging_named_folder_is_left_alone(tmp_path, monkeypatch):
    model_file = tmp_path / "model.keras"
    model_file.write_bytes(b"x")
    model = train_artifact(tmp_path / "fold1", model_file)
    serving = tmp_path / "jaa_net"
    (serving / ".staging-9").mkdir(parents=True)
    (serving / ".staging-9" / "notes.txt").write_text("mine")
    monkeypatch.setattr(component, "EXPORT",
                        dataclasses.replace(component.EXPORT, executor=_small_saved_model))
    component.run_export(model=model, output=serving, dataset="synthetic", log=None)
    assert (serving / ".staging-9" / "notes.txt").read_text() == "mine"
    assert not (serving / LOCK_FILE).exists()
