"""Shared fixtures: the repository's small cohort and the nof1 CLI binary."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "fixtures" / "small"
PANEL = ROOT / "fixtures" / "1000genomes-aisnp" / "seldin_128_dosage.csv"


def _cli():
    env = os.environ.get("NOF1_BIN")
    if env:
        return env
    for profile in ("release", "debug"):
        path = ROOT / "target" / profile / "nof1"
        if path.exists():
            return str(path)
    return shutil.which("nof1")


@pytest.fixture(scope="session")
def cli():
    """Runs the nof1 binary (NOF1_BIN, else target/release or target/debug)."""
    binary = _cli()
    if binary is None:
        pytest.skip("the nof1 binary is not built (cargo build --release, or set NOF1_BIN)")

    def run(*args):
        done = subprocess.run(
            [binary, "--quiet", *map(str, args)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    return run
