"""Every shared scenario file, through the Python API, with its transcript."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from scenario_runner import run_file, scenario_dir, scenario_files, write_transcript


def test_scenario_files_exist() -> None:
    assert scenario_files(), f"no scenario files in {scenario_dir()}"


@pytest.mark.parametrize("path", scenario_files(), ids=lambda p: p.stem)
def test_scenario(path: Path) -> None:
    transcript = run_file(path)
    assert len(transcript) == len(json.loads(path.read_text())["steps"])
    write_transcript(path, transcript)
