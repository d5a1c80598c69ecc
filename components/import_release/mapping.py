"""The authors' PyTorch-JAANet modules -> our JaaNet's layers, tensor by tensor.

The release's training scripts save six modules per epoch, each as a state_dict file
<module>_<epoch>.pth (MODULE_FILES). Their layout, by state_dict key:
  region_learning         multiscale_feat.{0,2}: the two hierarchical multi-scale region layers
                          (conv; local_conv_branch{1,2,3}.{bns,convs}.<patch>; bn)
  align_net               align_feat.feat_extract.*: a feature stack; align_output.{0,1}: the
                          landmark head
  local_attention_refine  local_aus_attention.<au>.{0,3,6,9} convs, {1,4,7} BatchNorms
  local_au_net            local_aus_branch.<au>.feat_extract.*: one feature stack per AU
  global_au_feat          feat_extract.*: the global feature stack
  au_net                  au_output.{0,1}: the AU head
What changes on the way (PyTorch is channels-first, Keras channels-last):
  - convolution kernels (out, in, kh, kw) -> (kh, kw, in, out);
  - a region branch's per-patch BatchNorm and convolution (patch i*grid + j, row-major) become
    channel group i*grid + j of our grouped BatchNorm and convolution (PatchwiseConv); in the
    same way AU i's refinement and feature stack become channel group i of our grouped
    AttentionRefinement and local FeatureStack;
  - dense weights (out, in) -> (in, out); a dense layer reading flattened (C, H, W) features
    gets its rows reordered to our (H, W, C) flattening;
  - BatchNorm: weight, bias, running_mean, running_var -> gamma, beta, moving mean, moving
    variance (epsilon 1e-5 on both sides; num_batches_tracked is training state and unused);
  - the AU head's 2 * n outputs keep the release's (2, n) layout: our AUHead reads it the same way.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from components.base import UserError
from components.import_release.pth_reader import read_state_dict
from schemas.face import AU_SETS, au_name

MODULE_FILES = ("region_learning", "align_net", "local_attention_refine", "local_au_net",
                "global_au_feat", "au_net")
# The release's default crop (its scripts' --crop_size); the map size, 44, follows from it.
RELEASE_CROP = 176
# Key prefix of the per-AU output layers the IJCV version adds to local_au_net (LocalAUNetv2).
V2_LOCAL_OUTPUT = "local_aus_output."
# Indices of a feature stack's convolutions and BatchNorms inside its nn.Sequential.
STACK_CONVS = (0, 3, 7, 10, 14, 17)
STACK_NORMS = (1, 4, 8, 11, 15, 18)
# The same for an AU's attention refinement (three conv-BN-ReLU, then conv and sigmoid).
REFINE_CONVS, REFINE_NORMS, REFINE_OUTPUT = (0, 3, 6), (1, 4, 7), 9


def module_files(release_dir: str | os.PathLike, epoch: int) -> dict[str, Path]:
    """The six files of `epoch` in a release run folder; a missing one is a UserError."""
    folder = Path(release_dir)
    if not folder.is_dir():
        raise UserError(f"--import_release {folder}: no such folder; pass the run folder that "
                        "holds the release's region_learning_<epoch>.pth ... au_net_<epoch>.pth")
    files = {m: folder / f"{m}_{epoch}.pth" for m in MODULE_FILES}
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        raise UserError(f"{folder} lacks {', '.join(missing)} (epoch {epoch}); a release run "
                        f"folder holds one file per module and epoch: "
                        f"{', '.join(f'{m}_<epoch>.pth' for m in MODULE_FILES)}. "
                        f"Epochs complete there: {_complete_epochs(folder) or 'none'}")
    return files


def _complete_epochs(folder: Path) -> list[int]:
    found: dict[int, set] = {}
    for path in folder.iterdir():
        stem, _, epoch = path.stem.rpartition("_")
        if path.suffix == ".pth" and stem in MODULE_FILES and epoch.isdigit():
            found.setdefault(int(epoch), set()).add(stem)
    return sorted(e for e, modules in found.items() if len(modules) == len(MODULE_FILES))


class ModuleTensors:
    """One module file's tensors; each is taken once, with its shape checked."""

    def __init__(self, path: Path, tensors: dict[str, np.ndarray]):
        self.path, self.tensors = path, dict(tensors)
        self.taken: set[str] = set()

    def shape(self, name: str) -> tuple[int, ...]:
        if name not in self.tensors:
            raise UserError(f"{self.path} has no tensor {name!r}; it is not the release's "
                            f"{self.path.stem.rpartition('_')[0]} module of the ECCV (v1) model")
        return self.tensors[name].shape

    def take(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        if self.shape(name) != tuple(shape):
            raise UserError(f"{self.path}: tensor {name!r} has shape {list(self.shape(name))}, "
                            f"expected {list(shape)}: the network the files describe (their width "
                            f"unit and AU count, the release's crop {RELEASE_CROP}) needs that "
                            "shape; the file belongs to another network")
        self.taken.add(name)
        return self.tensors[name].astype(np.float32)

    @property
    def values_taken(self) -> int:
        return sum(self.tensors[n].size for n in self.taken)

    def check_all_taken(self) -> None:
        unused = sorted(n for n in self.tensors if n not in self.taken
                        and not n.endswith(".num_batches_tracked"))
        if unused:
            raise UserError(f"{self.path} holds tensors this network has no place for "
                            f"({', '.join(unused[:5])}{' ...' if len(unused) > 5 else ''}); it is "
                            "not a module file of the release's ECCV (v1) model")


def read_release(files: dict[str, Path]) -> dict[str, ModuleTensors]:
    return {m: ModuleTensors(p, read_state_dict(p)) for m, p in files.items()}


def release_config(modules: dict[str, ModuleTensors], dataset: str):
    """The JaaNetConfig the release's files describe: the dataset's AUs, the width unit and head
    size of the files, the release's crop, and the local branches averaged (the release's
    LocalAUNetv1 divides their sum by the AU count)."""
    local = modules["local_au_net"]
    v2 = sorted(n for n in local.tensors if n.startswith(V2_LOCAL_OUTPUT))
    if v2:
        raise UserError(f"{local.path} holds tensor {v2[0]!r}: it comes from the IJCV version of "
                        "the model (JÂA-Net, 'v2': LocalAUNetv2, trained by train_JAAv2*.py), whose "
                        "local AU branches have outputs of their own. This importer reads the ECCV "
                        "(v1) model trained by train_JAAv1.py / train_JAAv1_disfa.py")
    aus = AU_SETS[dataset]
    head = modules["au_net"]
    head_shape = head.shape("au_output.1.weight")
    if head_shape[0] != 2 * len(aus):
        raise UserError(
            f"{head.path}: tensor 'au_output.1.weight' of shape {list(head_shape)} scores "
            f"{head_shape[0] // 2} AUs, but --dataset {dataset} has {len(aus)} "
            f"({', '.join(au_name(a) for a in aus)}); pass the --dataset the run was trained on "
            "(12 AUs: bp4d, 8 AUs: disfa)")
    entry = modules["region_learning"].shape("multiscale_feat.0.conv.weight")
    width_unit = max(entry[0] // 4, 1)
    hidden_units = modules["align_net"].shape("align_output.0.weight")[0]
    from jaa_keras import preset
    return preset(dataset, width_unit=width_unit,
                  hidden_units=hidden_units, crop_size=RELEASE_CROP, local_merge="mean")


# ----------------------------------------------------------------------------------------------
# Writing the tensors into the Keras layers
def _conv(src: ModuleTensors, prefixes: list[str], conv) -> None:
    """nn.Conv2d(s) -> a Conv2D; several prefixes: one per group of a grouped convolution."""
    kh, kw, cin, cout = conv.kernel.shape
    per_group = cout // len(prefixes)
    kernels = [src.take(f"{p}.weight", (per_group, cin, kh, kw)) for p in prefixes]
    conv.kernel.assign(np.concatenate(kernels).transpose(2, 3, 1, 0))
    conv.bias.assign(np.concatenate([src.take(f"{p}.bias", (per_group,)) for p in prefixes]))


def _bn(src: ModuleTensors, prefixes: list[str], norm) -> None:
    """nn.BatchNorm2d(s) -> a BatchNormalization; several prefixes: one per channel group."""
    channels = norm.gamma.shape[0] // len(prefixes)
    for variable, name in zip((norm.gamma, norm.beta, norm.moving_mean, norm.moving_variance),
                              ("weight", "bias", "running_mean", "running_var")):
        variable.assign(np.concatenate([src.take(f"{p}.{name}", (channels,)) for p in prefixes]))


def _patchwise(src: ModuleTensors, prefix: str, branch) -> None:
    """LocalConv2dReLU's grid*grid (BN, conv) pairs -> one grouped BN and grouped conv."""
    patches = range(branch.grid * branch.grid)
    _bn(src, [f"{prefix}.bns.{g}" for g in patches], branch.norm)
    _conv(src, [f"{prefix}.convs.{g}" for g in patches], branch.conv)


def _region_layer(src: ModuleTensors, prefix: str, layer) -> None:
    _conv(src, [f"{prefix}.conv"], layer.entry)
    for b, branch in enumerate(layer.patchwise):
        _patchwise(src, f"{prefix}.local_conv_branch{b + 1}", branch)
    _bn(src, [f"{prefix}.bn"], layer.norm)


def _feature_stack(src: ModuleTensors, prefixes: list[str], stack) -> None:
    """One feature stack, or (several prefixes) one stack per channel group of a grouped one."""
    for conv, norm, i, j in zip(stack.convs, stack.norms, STACK_CONVS, STACK_NORMS):
        _conv(src, [f"{p}.{i}" for p in prefixes], conv)
        _bn(src, [f"{p}.{j}" for p in prefixes], norm)


def _dense(src: ModuleTensors, prefix: str, dense, flattened_from=None) -> None:
    """nn.Linear -> Dense; `flattened_from` (H, W, C): the input is a flattened feature map,
    whose elements PyTorch orders (C, H, W) and Keras (H, W, C)."""
    fan_in, units = dense.kernel.shape
    weight = src.take(f"{prefix}.weight", (units, fan_in))
    if flattened_from is not None:
        h, w, c = flattened_from
        weight = weight.reshape(units, c, h, w).transpose(0, 2, 3, 1).reshape(units, fan_in)
    dense.kernel.assign(weight.T)
    dense.bias.assign(src.take(f"{prefix}.bias", (units,)))


def _refinement(src: ModuleTensors, prefixes: list[str], refine) -> None:
    """The per-AU refinements (one prefix per AU) -> our grouped AttentionRefinement."""
    for conv, norm, i, j in zip(refine.convs, refine.norms, REFINE_CONVS, REFINE_NORMS):
        _conv(src, [f"{p}.{i}" for p in prefixes], conv)
        _bn(src, [f"{p}.{j}" for p in prefixes], norm)
    _conv(src, [f"{p}.{REFINE_OUTPUT}" for p in prefixes], refine.output_conv)


def assign_release_weights(model, modules: dict[str, ModuleTensors]) -> dict:
    """Write every tensor of the six modules into `model` (built from `release_config`).
    Returns how many tensors and values were written."""
    config = model.config
    features = config.feature_size
    stack_out = model.global_features.compute_output_shape((None, features, features, 1))[1:]

    region = modules["region_learning"]
    _region_layer(region, "multiscale_feat.0", model.region1)
    _region_layer(region, "multiscale_feat.2", model.region2)

    align = modules["align_net"]
    _feature_stack(align, ["align_feat.feat_extract"], model.alignment_features)
    _dense(align, "align_output.0", model.alignment_head.hidden, flattened_from=stack_out)
    _dense(align, "align_output.1", model.alignment_head.output_layer)

    _feature_stack(modules["global_au_feat"], ["feat_extract"], model.global_features)

    aus = range(len(config.aus))
    _refinement(modules["local_attention_refine"], [f"local_aus_attention.{i}" for i in aus],
                model.attention.refine)
    _feature_stack(modules["local_au_net"], [f"local_aus_branch.{i}.feat_extract" for i in aus],
                   model.attention.local)

    # The AU head reads [alignment, global, local] features concatenated along the channels.
    concat = (*stack_out[:2], 3 * stack_out[2])
    _dense(modules["au_net"], "au_output.0", model.au_head.hidden, flattened_from=concat)
    _dense(modules["au_net"], "au_output.1", model.au_head.output_layer)

    for tensors in modules.values():
        tensors.check_all_taken()
    return {"tensors": sum(len(t.taken) for t in modules.values()),
            "values": sum(t.values_taken for t in modules.values())}
