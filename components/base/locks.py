"""One writer per folder: an advisory lock file (flock) that the kernel releases with its process."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

from components.base.artifact import LOCK_FILE, utc_now
from components.base.errors import FolderBusyError, UserError
from components.base.files import is_remote

_HELD_LOCKS: dict[str, list] = {}   # lock file -> [file descriptor, nesting depth] in this process


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, log: Callable[[str], None] | None = None, *,
                shared: bool = False):
    """Hold `<folder>/_LOCK` while the block runs: exclusively to write the folder, shared to
    read it (readers exclude writers, not each other). A conflicting holder -> FolderBusyError.

    flock(2) ties the lock to the open file, so the kernel releases it when its process dies: a
    lock file left by a killed run is simply taken over. A writer records its process id in the
    file for the message a second run gets. The last holder removes the file (still holding
    the lock; whoever opened the old file notices it is gone and tries again). Re-entrant
    within a process (a stage that runs the Beam job locks the folder the job locks too).
    A folder that cannot take a lock file (read-only) is read without one. An object store
    (a URL) has no such lock: the block runs unlocked there, as TFX's and Beam's writers do."""
    if is_remote(folder):
        yield
        return
    folder = Path(folder)
    if not shared:
        folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    key = os.path.abspath(path)
    if key in _HELD_LOCKS:
        _HELD_LOCKS[key][1] += 1
        try:
            yield
        finally:
            _HELD_LOCKS[key][1] -= 1
        return
    try:
        fd, previous = _acquire(path, shared)
    except OSError as error:
        if not shared:
            raise UserError(f"cannot write the lock file {path} ({error.strerror}); make "
                            f"{folder} writable or choose another folder") from None
        yield
        return
    if previous and log:
        log(f"taking over the lock {path} of a run that ended without releasing it "
            f"({_holder(previous)}; that process is gone)")
    _HELD_LOCKS[key] = [fd, 1]
    try:
        yield
    finally:
        del _HELD_LOCKS[key]
        try:
            if shared:  # the last reader out removes the file
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _is_current(path, fd):
                path.unlink()
        except BlockingIOError:
            pass
        finally:
            os.close(fd)


_BUSY_RETRIES, _BUSY_WAIT_S = 20, 0.05  # a holder may be just leaving: retry for a second


def _acquire(path: Path, shared: bool) -> tuple[int, str]:
    """(descriptor holding the lock on `path`, what a previous writer had written in it)."""
    attempts = 0
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            busy = _busy_message(path, fd)
            os.close(fd)
            attempts += 1
            if attempts > _BUSY_RETRIES:
                raise FolderBusyError(busy) from None
            time.sleep(_BUSY_WAIT_S)
            continue
        if _is_current(path, fd):  # not a file its holder removed while we were opening it
            break
        os.close(fd)
    previous = os.pread(fd, 4096, 0).decode(errors="replace")
    if shared:
        return fd, ""
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "started_at": utc_now(),
                              "command": " ".join(sys.argv)}).encode(), 0)
    return fd, previous


def _is_current(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _busy_message(path: Path, fd: int) -> str:
    readers = _reading_processes(fd)
    if readers:
        return (f"{path.parent} is being read by another run (process id "
                f"{', '.join(map(str, readers))}); wait for it to finish (or stop it) and run "
                "again, or write into another folder")
    return (f"{path.parent} is being written by another run "
            f"({_holder(os.pread(fd, 4096, 0).decode(errors='replace'))}); wait for it to "
            "finish (or stop it) and run again, or write into another folder")


def _reading_processes(fd: int) -> list[int]:
    """Process ids holding a shared flock on `fd`'s file, per /proc/locks (Linux; else [])."""
    inode = str(os.fstat(fd).st_ino)
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    pids = set()
    for fields in map(str.split, lines):  # e.g. "3: FLOCK  ADVISORY  READ 4242 00:2f:1234 0 EOF"
        if ("->" not in fields and len(fields) >= 6 and fields[1] == "FLOCK"
                and fields[3] == "READ" and fields[5].rsplit(":", 1)[-1] == inode):
            pids.add(int(fields[4]))
    return sorted(pids)


def _holder(text: str) -> str:
    try:
        holder = json.loads(text)
        return (f"process id {holder['pid']}, since {holder.get('started_at')}: "
                f"{holder.get('command') or '?'}")
    except (json.JSONDecodeError, KeyError, TypeError):
        return "process id not recorded yet"
