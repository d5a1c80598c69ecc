"""The preprocess stage's executor: the Beam job of pipeline/job.py writes the output folder."""
from __future__ import annotations

import contextlib

from components.base import UserError


@contextlib.contextmanager
def _input_errors_told():
    """A missing or foreign folder, an unreadable file (DatasetLayoutError is a ValueError): the
    message names the file and the fix, so it is a UserError."""
    try:
        yield
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        raise UserError(str(e)) from None


def read_sources(params) -> dict:
    from pipeline.job import read_raw
    with _input_errors_told():
        return read_raw(params)


def run_executor(inputs, outputs, params) -> dict:
    from pipeline.job import write_examples
    with _input_errors_told():
        return write_examples(params, outputs["examples"].uri)
