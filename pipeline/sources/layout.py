"""Folder look-ups and checks the dataset modules share, with the messages a user sees.

Names are matched case-insensitively: copies of the datasets differ in letter case.
"""
import os

from .errors import DatasetLayoutError


def listing(folder) -> dict[str, str]:
    """Lower-cased name -> real name of a folder's entries ({} when it does not exist)."""
    try:
        return {name.lower(): name for name in os.listdir(folder)}
    except OSError:
        return {}


def child(folder, name) -> str | None:
    """Path of the entry of `folder` called `name` in any letter case, or None."""
    real = listing(folder).get(name.lower())
    return os.path.join(folder, real) if real else None


def descend(folder, *names) -> str:
    """`folder/names...`, each step matched in any letter case; a missing step keeps its name."""
    path = os.fspath(folder)
    for name in names:
        path = child(path, name) or os.path.join(path, name)
    return path


def require_root(root, dataset: str, folders) -> str:
    """`root` as a string; DatasetLayoutError unless it is a folder."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DatasetLayoutError(
            f"{dataset} root {root!r} is not a folder; pass the folder that holds "
            f"{', '.join(f + '/' for f in folders)}")
    return root


def require_folders(root: str, dataset: str, expected: dict[str, str]) -> None:
    """DatasetLayoutError naming the first folder of `expected` ({folder: example path inside})
    that `root` lacks."""
    for folder, inside in expected.items():
        if child(root, folder) is None:
            raise DatasetLayoutError(
                f"{dataset} root {root!r} has labels but no {folder}/ folder: expected "
                f"{os.path.join(root, folder, inside)}; copy that folder from the {dataset} release")


def require_subjects(root: str, dataset: str, available, subjects) -> set[str]:
    """The requested subjects as a set; DatasetLayoutError naming any that `root` has no labels for."""
    subjects = set(subjects)
    absent = sorted(subjects - set(available))
    if absent:
        raise DatasetLayoutError(
            f"{dataset} root {root!r} has no labels for subject(s) {', '.join(absent)} "
            f"(it has {', '.join(sorted(set(available)))}); check the subject names or the copy")
    return subjects
