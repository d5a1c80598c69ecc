"""Running a stage in another process, as a user's run that gets killed."""
import subprocess
import time
from pathlib import Path


def kill_once_exists(path: Path, command, *, cwd, env=None, timeout=240) -> None:
    """Run `command` and SIGKILL it as soon as `path` exists (say, a checkpoint's state.json)."""
    proc = subprocess.Popen(command, cwd=cwd, env=env)
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the process ended before {path} existed"
        assert time.time() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
