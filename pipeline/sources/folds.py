"""The official subject-exclusive 3-fold partitions (docs/data.md).

Train on two parts, test on the third, report the mean over the three.
"""
from .errors import DatasetLayoutError

FOLDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "bp4d": (
        ("F001", "F002", "F008", "F009", "F010", "F016", "F018", "F023",
         "M001", "M004", "M007", "M008", "M012", "M014"),
        ("F003", "F005", "F011", "F013", "F020", "F022",
         "M002", "M005", "M010", "M011", "M013", "M016", "M017", "M018"),
        ("F004", "F006", "F007", "F012", "F014", "F015", "F017", "F019", "F021",
         "M003", "M006", "M009", "M015"),
    ),
    "disfa": (
        ("SN001", "SN002", "SN009", "SN010", "SN016", "SN026", "SN027", "SN030", "SN032"),
        ("SN006", "SN011", "SN012", "SN013", "SN018", "SN021", "SN024", "SN028", "SN031"),
        ("SN003", "SN004", "SN005", "SN007", "SN008", "SN017", "SN023", "SN025", "SN029"),
    ),
}


def part_of(dataset: str, subject: str) -> int:
    """The 1-based part (1, 2 or 3) a subject belongs to in the official partition."""
    for number, subjects in enumerate(_folds(dataset), start=1):
        if subject in subjects:
            return number
    raise DatasetLayoutError(
        f"subject {subject!r} is not in any official {dataset} part (docs/data.md); "
        f"known subjects: {', '.join(sorted(s for part in FOLDS[dataset] for s in part))}")


def unknown_subjects(dataset: str, subjects) -> list[str]:
    """The subjects (sorted) that are in none of the dataset's official parts."""
    known = {s for part in _folds(dataset) for s in part}
    return sorted(set(subjects) - known)


def _folds(dataset: str):
    try:
        return FOLDS[dataset]
    except KeyError:
        raise DatasetLayoutError(
            f"no official partition for dataset {dataset!r}; known: {', '.join(FOLDS)}") from None
