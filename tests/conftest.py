"""Shared fixtures: the real Sentinel-2 data in ../shared/data, and the installed CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data folder. Skips outside CI when absent; CI always has it, so there it fails."""
    if not (SHARED_DATA / "README.md").is_file():
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):  # CI=true (.ci/run sets it), any CI runner
            pytest.fail(f"CI needs the real data in {SHARED_DATA}, but it is missing")
        pytest.skip(f"real Sentinel-2 data not found at {SHARED_DATA} (it sits beside the checkout in CI)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ssc_edge_command() -> list[str]:
    """The installed ``ssc-edge`` console script (tests run the real command, not a function)."""
    exe = shutil.which("ssc-edge", path=str(Path(sys.executable).parent)) or shutil.which("ssc-edge")
    if exe is None:
        pytest.fail("the ssc-edge command is not installed; run pip install -e '.[train,geo,test]'")
    return [exe]


@pytest.fixture()
def run_cli(ssc_edge_command):
    """Run ``ssc-edge ARGS`` and return the CompletedProcess (text, no check)."""

    def run(*args: object, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*ssc_edge_command, *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
        )

    return run
