"""Command-line flags made from stage contracts: a parameter's type, choices, rule, default and
help are written once, in its contract, and the command line and run_stage check the same."""
from __future__ import annotations

import argparse

from components.base.contract import Rule, StageSpec


def value_type(kind: type, rule: Rule | None = None):
    """An argparse type: a `kind` value that `rule` accepts; otherwise "<text> is not <rule>"."""
    def convert(text):
        value = kind(text)  # a ValueError reads "invalid int value: 'x'" (argparse)
        if rule is not None and not rule(value):
            raise argparse.ArgumentTypeError(f"{text} is not {rule.words}")
        return value
    convert.__name__ = kind.__name__
    return convert


def list_type(item: type, rule: Rule | None = None, whole: Rule | None = None):
    """An argparse type for comma-separated values, at least one, each `item` and `rule`."""
    convert_item = value_type(item, rule)

    def convert(text):
        values = [convert_item(v) for v in text.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"{text!r} lists no value")
        if whole is not None and not whole(values):
            raise argparse.ArgumentTypeError(f"{text} {whole.words}")
        return values
    convert.__name__ = "list"
    return convert


def add_flags(parser, spec: StageSpec, *, stage_defaults: bool = False) -> list[str]:
    """--<name> for every parameter of `spec` marked as a flag; returns their names.

    A flag not given is None (the stage's default then applies, and a preset may set it),
    unless `stage_defaults`: then it holds the stage's default, for a command that passes every
    value on (python -m pipeline.job)."""
    names = []
    for p in spec.parameters:
        if not p.flag:
            continue
        shown = "" if p.default in (None, False, []) else f" (default {_shown(p.default)})"
        kwargs = {"default": p.default if stage_defaults else None, "help": p.help + shown}
        if p.type is bool:
            parser.add_argument(f"--{p.name}", action="store_true", **kwargs)
        elif p.type is list:
            parser.add_argument(f"--{p.name}", type=list_type(p.item, p.rule, p.whole),
                                metavar="V[,V...]", **kwargs)
        else:
            parser.add_argument(f"--{p.name}", type=value_type(p.type, p.rule),
                                choices=p.choices, **kwargs)
        names.append(p.name)
    return names


def flags_given(args, names) -> dict:
    """The flags of `names` that the command line set."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _shown(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
