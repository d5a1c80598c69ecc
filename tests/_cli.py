"""The command line's refusals, checked as a user meets them."""
import pytest

import run_pipeline


def assert_refused(argv, message: str, capsys) -> None:
    """`run_pipeline.parse(argv)` exits 2 with one error line holding `message` and no traceback."""
    with pytest.raises(SystemExit) as stop:
        run_pipeline.parse(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1
