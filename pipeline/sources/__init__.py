"""Raw dataset formats: BP4D and DISFA folders as their releases lay them out.

Each dataset module offers the same reader functions, so the pipeline treats them alike:
  validate_root(root)                -> None, or DatasetLayoutError before any job starts
  list_units(root, subjects=None)    -> [SourceUnit], one per sequence (BP4D) or video (DISFA)
  read_unit(unit, **offsets)         -> iterator of RawFrame, every frame exactly once (coded
                                        frames, then uncoded ones: RawFrame.coded)
and a writer for the same format (bp4d.write_sequence, disfa.write_subject) that the synthetic
dataset and the tests use. `unlabelled` reads the job's --unlabelled_dir (face videos and image
sequences without AU codes) through the same three functions.
"""
from . import bp4d, disfa, unlabelled
from .errors import DatasetLayoutError
from .folds import FOLDS, part_of, unknown_subjects
from .records import RawFrame, SourceUnit

SOURCES = {"bp4d": bp4d, "disfa": disfa, unlabelled.DATASET: unlabelled}


def source(dataset: str):
    """The reader module of a raw dataset format by name."""
    try:
        return SOURCES[dataset]
    except KeyError:
        raise DatasetLayoutError(
            f"unknown raw dataset format {dataset!r}; known: {', '.join(SOURCES)}") from None


__all__ = ["DatasetLayoutError", "FOLDS", "RawFrame", "SOURCES", "SourceUnit", "bp4d", "disfa",
           "part_of", "source", "unknown_subjects", "unlabelled"]
