"""The import stage: the authors' PyTorch release files become our model, output for output.

tests/fixtures/pytorch_release/ holds a release-shaped run (six module files at reduced width)
and the release's own outputs on two faces (its README says how they were made); no PyTorch here.
"""
import collections
import io
import json
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from components.base import Artifact, UserError
from components.import_release.component import run_import
from components.import_release.pth_reader import UnsafePickleError, read_state_dict

FIXTURE = Path(__file__).parents[1] / "fixtures" / "pytorch_release"
EPOCH = 7
MODULES = ("region_learning", "align_net", "local_attention_refine", "local_au_net",
           "global_au_feat", "au_net")


# -- writing .pth files without torch (for the bad-input tests) ---------------------------------
class _Global:
    """A global of another module (torch's), written into a pickle by name, never imported."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):
        raise AssertionError("never called")


class _Tensor:
    """A tensor reading `shape` from a flat float32 `storage` at `offset` with element `stride`s."""

    def __init__(self, key, storage, offset, shape, stride):
        self.key, self.storage = key, np.asarray(storage, np.float32).reshape(-1)
        self.offset, self.shape, self.stride = offset, tuple(shape), tuple(stride)

    def __reduce__(self):
        pid = ("storage", _Global("torch", "FloatStorage"), self.key, "cpu", self.storage.size)
        return (_Global("torch._utils", "_rebuild_tensor_v2"),
                (_Storage(pid), self.offset, self.shape, self.stride, False,
                 collections.OrderedDict()))


class _Storage:
    def __init__(self, pid):
        self.pid = pid


class _TorchPickler(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[_Global] = lambda self, obj: self.write(
        pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _Storage) else None


def write_pth(path, tensors: dict, payload=None, byteorder="little"):
    """A zip-format .pth laid out as torch.save writes one; a tensor is an array or a
    (storage, offset, shape, stride) view; `payload` replaces the pickle."""
    entries = collections.OrderedDict()
    for i, (name, value) in enumerate(tensors.items()):
        if isinstance(value, np.ndarray):
            value = (value, 0, value.shape, [s // value.itemsize for s in
                                             np.array(value, order="C").strides])
        entries[name] = _Tensor(str(i), *value)
    buffer = io.BytesIO()
    _TorchPickler(buffer, protocol=2).dump(entries)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload or buffer.getvalue())
        archive.writestr("archive/byteorder", byteorder)
        for t in entries.values():
            dtype = "<f4" if byteorder == "little" else ">f4"
            archive.writestr(f"archive/data/{t.key}", t.storage.astype(dtype).tobytes())
    return path


@pytest.fixture
def release(tmp_path):
    """A copy of the fixture run in a folder whose name has spaces and odd characters."""
    run = tmp_path / "PyTorch JAANet [run] combine_1_2"
    shutil.copytree(FIXTURE / "run", run)
    return run


# -- the reader --------------------------------------------------------------------------------
def test_reads_the_release_files_in_both_formats():
    legacy = read_state_dict(FIXTURE / "run" / f"local_au_net_{EPOCH}.pth")  # PyTorch < 1.6
    zipped = read_state_dict(FIXTURE / "run" / f"global_au_feat_{EPOCH}.pth")
    # Module 0 of the local stacks and the global stack are both HLFeatExtractor(8, 1).
    for key, value in zipped.items():
        assert legacy[f"local_aus_branch.0.{key}"].shape == value.shape
        assert legacy[f"local_aus_branch.0.{key}"].dtype == value.dtype
    assert zipped["feat_extract.0.weight"].shape == (12, 8, 3, 3)
    assert zipped["feat_extract.1.num_batches_tracked"] == 1234
    assert legacy["local_aus_branch.7.feat_extract.18.running_var"].dtype == np.float32


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_a_pickle_naming_other_globals_is_refused_and_never_run(tmp_path, layout):
    marker = tmp_path / "pwned"
    evil = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    path = tmp_path / f"au_net_{EPOCH}.pth"
    if layout == "zip":
        write_pth(path, {"au_output.0.weight": np.zeros((2, 2))}, payload=evil)
    else:
        path.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, 2) + evil)
    assert pickle.loads(evil) == 0 and marker.exists()  # the payload does run when unpickled
    marker.unlink()
    with pytest.raises(UnsafePickleError) as error:
        read_state_dict(path)
    assert str(path) in str(error.value) and "os.system" in str(error.value)
    assert not marker.exists()


def test_views_and_byte_order_are_read_as_torch_lays_them_out(tmp_path):
    storage = np.arange(24, dtype=np.float32)
    # A transposed 3 x 2 window at element offset 7: element [i, j] is storage[7 + i + 6 j].
    path = write_pth(tmp_path / "t.pth", {"w": (storage, 7, (3, 2), (1, 6))}, byteorder="big")
    got = read_state_dict(path)["w"]
    assert got.dtype == np.float32 and got.dtype.byteorder in "=<"
    assert got.tolist() == [[7, 13], [8, 14], [9, 15]]


def test_a_tensor_reading_past_its_storage_is_refused(tmp_path):
    path = write_pth(tmp_path / "t.pth", {"w": (np.zeros(6), 2, (2, 3), (3, 1))})
    with pytest.raises(UserError, match="reads past the end of its storage"):
        read_state_dict(path)


# -- the stage ---------------------------------------------------------------------------------
def cli(*flags):
    return subprocess.run([sys.executable, "run_pipeline.py", *flags], capture_output=True,
                          text=True, cwd=Path(__file__).parents[2])


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The fixture run imported as a user would: the command line, in a fresh process."""
    root = tmp_path_factory.mktemp("imported")
    run = root / "PyTorch JAANet [run] combine_1_2"
    shutil.copytree(FIXTURE / "run", run)
    ran = cli("--dataset", "disfa", "--stages", "import", "--import_release", str(run),
              "--import_epoch", str(EPOCH), "--folds", "3", "--output_dir", str(root / "out dir"))
    assert ran.returncode == 0, ran.stderr
    return {"run": run, "model": Artifact(root / "out dir" / "models" / "disfa" / "fold3")}


@pytest.fixture(scope="module")
def imported_model(imported):
    import jaa_keras.model  # noqa: F401  registers the classes (a plain `import jaa_keras` does not yet)
    from components.evaluate.model_io import load_model
    return load_model(imported["model"].path)


def test_imported_model_computes_what_the_release_computes(imported_model):
    import tensorflow as tf

    from components.train.input_pipeline import center_crop_images, crop_landmarks_to_aligned
    model = imported_model
    faces = np.load(FIXTURE / "faces.npz")["faces"]
    outputs = model(center_crop_images(tf.constant(faces), model.config.crop_size), training=False)
    np.testing.assert_allclose(outputs["au_probability"], np.load(FIXTURE / "au_probability.npy"),
                               atol=1e-4)
    release_landmarks = np.load(FIXTURE / "landmarks_crop176.npy")
    np.testing.assert_allclose(outputs["landmarks"], release_landmarks, atol=1e-3)
    # What serving returns: the same points in the 200 x 200 face (the crop starts at 12, 12).
    np.testing.assert_allclose(crop_landmarks_to_aligned(outputs["landmarks"], 176),
                               release_landmarks + 12, atol=1e-3)
    np.testing.assert_allclose(np.transpose(outputs["attention"], (0, 3, 1, 2)),
                               np.load(FIXTURE / "attention.npy"), atol=1e-4)
    assert model.config.local_merge == "mean" and model.config.crop_size == 176


def test_import_writes_the_train_stages_artifact_with_provenance(imported, imported_model):
    from components.export.model_card import card_metadata, render_card
    artifact = imported["model"]
    record = artifact.record()
    assert (record["stage"], record["identity"], record["parameters"]["fold"]) == (
        "import", {"dataset": "disfa"}, 3)
    assert record["summary"]["epoch"] == EPOCH and record["summary"]["tensors"] > 1000
    assert set(record["parameters"]["release_sha256"]) == {f"{m}_{EPOCH}.pth" for m in MODULES}
    # The card as the Export stage writes it (parameters of the model's record, less the dataset).
    training = {k: v for k, v in artifact.parameters.items() if k != "dataset"}
    meta = card_metadata(model=imported_model, dataset="disfa", fold=3, version=1,
                         model_name="jaa_net", threshold=0.5, model_file="model.keras",
                         evaluation=None, training=training)
    assert meta["provenance"]["release_dir"] == str(imported["run"])
    assert meta["provenance"]["epoch"] == EPOCH
    card = render_card(meta)
    assert "authors' PyTorch-JAANet release" in card and f"epoch {EPOCH}" in card
    assert "merged by mean" in card
    assert str(imported["run"]) in card
    # Same files and parameters: skipped.
    again = run_import(release_dir=imported["run"], epoch=EPOCH, output=artifact.path,
                       dataset="disfa", fold=3, log=None)
    assert again.skipped
    json.dumps(meta)  # jaa_net.json carries it


# -- clear errors ------------------------------------------------------------------------------
def _error(release, **overrides):
    params = {"release_dir": release, "epoch": EPOCH, "dataset": "disfa", "fold": 3,
              "output": release.parent / "out", "log": None, **overrides}
    with pytest.raises(UserError) as error:
        run_import(**params)
    return str(error.value)


def test_missing_module_file(release):
    (release / f"au_net_{EPOCH}.pth").unlink()
    message = _error(release)
    assert f"au_net_{EPOCH}.pth" in message and str(release) in message
    assert "Epochs complete there: none" in message


def test_a_trained_model_is_never_replaced(release):
    from components.base import write_completion_record
    trained = release.parent / "out"
    trained.mkdir()
    (trained / "model.keras").write_bytes(b"hours of training")
    write_completion_record(trained, stage="train", parameters={"dataset": "disfa", "fold": 3},
                            identity={"dataset": "disfa"})
    message = _error(release)
    assert "train stage" in message and str(trained) in message
    assert (trained / "model.keras").read_bytes() == b"hours of training"


def test_au_count_must_match_the_dataset(release):
    message = _error(release, dataset="bp4d")
    assert str(release / f"au_net_{EPOCH}.pth") in message
    assert "'au_output.1.weight'" in message and "8 AUs" in message and "12" in message


def test_a_file_of_the_ijcv_v2_model(release):
    tensors = read_state_dict(release / f"local_au_net_{EPOCH}.pth")
    tensors["local_aus_output.0.0.weight"] = np.zeros((8, 4000), np.float32)
    write_pth(release / f"local_au_net_{EPOCH}.pth", tensors)
    message = _error(release)
    assert str(release / f"local_au_net_{EPOCH}.pth") in message
    assert "'local_aus_output.0.0.weight'" in message and "IJCV" in message


def test_a_tensor_of_the_wrong_shape(release):
    tensors = read_state_dict(release / f"global_au_feat_{EPOCH}.pth")
    tensors["feat_extract.3.weight"] = np.zeros((12, 11, 3, 3), np.float32)
    write_pth(release / f"global_au_feat_{EPOCH}.pth", tensors)
    message = _error(release)
    assert str(release / f"global_au_feat_{EPOCH}.pth") in message
    assert "'feat_extract.3.weight'" in message and "[12, 11, 3, 3]" in message
    assert "[12, 12, 3, 3]" in message


def test_cli_refuses_incomplete_import_flags(release):
    def error_of(*flags):
        result = cli("--dataset", "disfa", *flags)
        assert result.returncode == 2
        return result.stderr
    assert "--folds K" in error_of("--stages", "import,export", "--import_release", str(release),
                                   "--import_epoch", str(EPOCH))
    assert "--import_epoch" in error_of("--stages", "import", "--import_release", str(release),
                                        "--folds", "3")
    assert "--stages import" in error_of("--stages", "export", "--import_epoch", "3")
    assert "choose one" in error_of("--stages", "import,train", "--import_release", str(release),
                                    "--import_epoch", str(EPOCH), "--folds", "3")
