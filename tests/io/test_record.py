"""The settings record of an output folder: same settings resume, others are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iem.io.record import SETTINGS_RECORD, SettingsMismatch, record_settings, settings_differences

SETTINGS = {"config": {"iterations": 150, "init_sizes": (44, 78, 92), "smoothing": True}, "size": 128}


def test_first_run_writes_the_record_and_the_same_settings_resume(tmp_path: Path) -> None:
    path = record_settings(tmp_path, SETTINGS, overwrite=False, notes={"device": "cpu"})
    assert path == tmp_path / SETTINGS_RECORD
    record = json.loads(path.read_text())
    assert record["settings"]["config"]["init_sizes"] == [44, 78, 92] and record["notes"] == {"device": "cpu"}
    record_settings(tmp_path, SETTINGS, overwrite=False, notes={"device": "cuda"})  # notes are not compared


def test_other_settings_are_refused_naming_each_difference(tmp_path: Path) -> None:
    record_settings(tmp_path, SETTINGS, overwrite=False)
    other = {"config": {"iterations": 0, "init_sizes": (78,), "smoothing": True}, "size": 128}
    with pytest.raises(SettingsMismatch) as caught:
        record_settings(tmp_path, other, overwrite=False)
    message = str(caught.value)
    assert "config.iterations: 150 there, 0 now" in message and "config.init_sizes: [44, 78, 92] there, [78] now" in message
    assert "smoothing" not in message and "--overwrite" in message and "\n" not in message
    record_settings(tmp_path, other, overwrite=True)
    assert json.loads((tmp_path / SETTINGS_RECORD).read_text())["settings"]["config"]["iterations"] == 0


def test_settings_the_record_predates_are_not_compared() -> None:
    assert settings_differences({"config": {"iterations": 3}}, {"config": {"iterations": 3, "new_field": 1}}) == []


@pytest.mark.parametrize("content", ["{not json", '{"format": 1}', '{"settings": 7}', "[]"])
def test_an_unreadable_record_is_refused_unless_overwriting(tmp_path: Path, content: str) -> None:
    (tmp_path / SETTINGS_RECORD).write_text(content)
    with pytest.raises(SettingsMismatch, match="cannot read the settings record"):
        record_settings(tmp_path, SETTINGS, overwrite=False)
    record_settings(tmp_path, SETTINGS, overwrite=True)
    assert json.loads((tmp_path / SETTINGS_RECORD).read_text())["settings"]["size"] == 128
