"""A stage's contract: what it reads, writes and takes as parameters, and which executor works.

The executor is named apart from the contract (a callable or a "module:function" string), so
importing a contract never imports TensorFlow or Beam.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from components.base.errors import ParameterError

_REQUIRED = object()


@dataclass(frozen=True)
class Rule:
    """What a value must be: `accept(value)` holds, or it "is not <words>"."""
    accept: Callable[[Any], bool]
    words: str

    def __call__(self, value) -> bool:
        return self.accept(value)


POSITIVE = Rule(lambda v: v > 0, "a positive integer")
NON_NEGATIVE = Rule(lambda v: v >= 0, "an integer >= 0")
POSITIVE_REAL = Rule(lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
NON_NEGATIVE_REAL = Rule(lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")


@dataclass(frozen=True)
class Parameter:
    """One execution parameter of a stage.

    type: int, float, str, bool, list or dict; a value of None is allowed when the default is None.
    cache: whether the value enters the cache key (False for e.g. verbosity or worker counts).
    identity: a value that names what the outputs are (the dataset): an existing output folder
      with another value is refused instead of being overwritten.
    rule: what a value (each item, for a list) must be, beyond its type and choices.
    item: the type of a list's items; `whole`: a rule on the list as a whole.
    flag: the command line offers it as --<name> (components/base/cli.py makes the flag from
      this definition: type, choices, rule, default and help written once).
    """
    name: str
    type: type
    default: Any = _REQUIRED
    help: str = ""
    choices: tuple | None = None
    cache: bool = True
    identity: bool = False
    rule: Rule | None = None
    item: type | None = None
    whole: Rule | None = None
    flag: bool = False

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def coerce(self, value: Any, stage: str) -> Any:
        if value is None and self.default is None:
            return None
        try:
            if self.type is float and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = float(value)
            elif self.type is list and isinstance(value, tuple):
                value = list(value)
            elif self.type is int and hasattr(value, "__index__") and not isinstance(value, bool):
                value = int(value)
            if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
                raise TypeError
        except TypeError:
            raise ParameterError(f"stage {stage!r}: parameter {self.name!r} must be "
                                 f"{self.type.__name__}, got {value!r}") from None
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f"stage {stage!r}: parameter {self.name!r} must be one of "
                                 f"{list(self.choices)}, got {value!r}")
        if self.type is list and self.item is not None:
            value = [self._item(v, stage) for v in value]
            if self.whole is not None and not self.whole(value):
                raise ParameterError(f"stage {stage!r}: parameter {self.name!r} {value} "
                                     f"{self.whole.words}")
        elif self.rule is not None and not self.rule(value):
            raise ParameterError(f"stage {stage!r}: parameter {self.name!r} must be "
                                 f"{self.rule.words}, got {value!r}")
        return value

    def _item(self, value, stage: str):
        if self.item is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.item) or isinstance(value, bool) or (
                self.rule is not None and not self.rule(value)):
            raise ParameterError(f"stage {stage!r}: parameter {self.name!r}: each value must be "
                                 f"{self.rule.words if self.rule else self.item.__name__}, got "
                                 f"{value!r}")
        return value


@dataclass(frozen=True)
class InputSpec:
    """One input of a stage: an artifact folder, typed by the stages that write such artifacts.

    produced_by: the stages whose outputs it accepts (empty: any); one of another stage is
      refused with the stage named, before any work.
    same: identity parameters (e.g. "dataset") whose value in the input's record must equal
      this run's: a model of another dataset is refused, not evaluated."""
    name: str
    optional: bool = False
    help: str = ""
    produced_by: tuple[str, ...] = ()
    same: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageSpec:
    """A stage's contract: its inputs, outputs and parameters, and which executor does the work."""
    name: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    parameters: tuple[Parameter, ...]
    executor: str | Callable
    description: str = ""
    resumable: bool = False  # keep a started-but-unfinished output folder (same cache key) on rerun
    # fn(parameters) -> {name: fingerprint} for what the stage reads that is not an artifact (a
    # raw dataset folder): checked (a DatasetLayoutError names what is wrong before anything is
    # touched) and fingerprinted, so that a change to it reruns the stage; a "module:function".
    read_sources: str | Callable | None = None
    # fn(folder) -> True when a complete output is still whole (e.g. its files match its
    # manifest): a cache hit that fails it is rebuilt instead of skipped.
    verify_output: str | Callable | None = None
    # The executor reads and writes URL folders itself (the Beam job, whose workers cannot
    # reach this machine's disk). Otherwise a URL input is copied to a local working folder
    # first, and a URL output is written locally and copied up when the executor is done.
    url_aware: bool = False
    # fn(folder) -> a few words on the work in an output folder (e.g. "checkpoints up to epoch
    # 3"), said before that work is discarded; a callable or a "module:function" string.
    describe_work: str | Callable | None = None

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.parameters if not p.required}

    def resolve(self, parameters: Mapping | None) -> dict:
        """Fill defaults, check types and choices, reject unknown names."""
        parameters = dict(parameters or {})
        known = {p.name for p in self.parameters}
        unknown = sorted(set(parameters) - known)
        if unknown:
            raise ParameterError(f"stage {self.name!r} has no parameter(s) {unknown}; "
                                 f"known: {sorted(known)}")
        resolved = {}
        for p in self.parameters:
            if p.name in parameters:
                resolved[p.name] = p.coerce(parameters[p.name], self.name)
            elif p.required:
                raise ParameterError(f"stage {self.name!r}: parameter {p.name!r} is required")
            else:
                resolved[p.name] = p.default
        return resolved

    def load_executor(self) -> Callable:
        return load(self.executor)

    def describe(self) -> str:
        lines = [f"stage {self.name}: {self.description}".rstrip(": ")]
        for i in self.inputs:
            lines.append(f"  input  {i.name}{' (optional)' if i.optional else ''}  {i.help}".rstrip())
        for o in self.outputs:
            lines.append(f"  output {o}")
        for p in self.parameters:
            default = "required" if p.required else f"default {p.default!r}"
            lines.append(f"  param  {p.name}: {p.type.__name__} ({default})  {p.help}".rstrip())
        return "\n".join(lines)


def load(target: str | Callable | None) -> Callable | None:
    """The callable a contract names ("module:function"), imported on first use."""
    if target is None or callable(target):
        return target
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
