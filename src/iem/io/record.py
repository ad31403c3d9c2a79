"""The settings record of an output folder: which settings made the outputs in it.

``iem segment`` skips inputs whose outputs exist, so that a rerun resumes; that is only right
when the outputs were made with the same settings. Each run therefore compares its settings
with the record in the output folder (:data:`SETTINGS_RECORD`, JSON) before writing anything:
the same settings resume, other settings are refused with the differences named, unless the
run overwrites; then the record is (re)written, atomically, before the first output.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Union

from iem.io.write import write_text

PathLike = Union[str, os.PathLike]

#: File name of the record in the output folder.
SETTINGS_RECORD = "iem-settings.json"
#: Layout version of the record.
RECORD_FORMAT = 1


class SettingsMismatch(ValueError):
    """The output folder holds outputs made with other settings; ``str(err)`` is one line."""


def _plain(values: Mapping[str, Any]) -> Dict[str, Any]:
    # Through JSON and back: tuples become lists, as they will be when read from the record.
    return json.loads(json.dumps(dict(values)))


def _flat(values: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def settings_differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> List[str]:
    """``"name: VALUE there, VALUE now"`` for every setting whose values differ.

    A setting missing from the record (written before the setting existed) is not compared.
    """
    there, now = _flat(_plain(recorded)), _flat(_plain(current))
    return [
        f"{key}: {json.dumps(there[key])} there, {json.dumps(value)} now"
        for key, value in now.items()
        if key in there and there[key] != value
    ]


def record_settings(
    out_dir: PathLike, settings: Mapping[str, Any], overwrite: bool, notes: Mapping[str, Any] = {}
) -> Path:
    """Check ``settings`` against the record in ``out_dir``, then write them as the record.

    Args:
        out_dir: the output folder (it exists).
        settings: everything that decides what an output holds (JSON-friendly values); only
            these are compared.
        overwrite: the run rewrites its outputs: a different or unreadable record is replaced.
        notes: written beside the settings and never compared (versions, the device).

    Returns:
        The path of the record.

    Raises:
        SettingsMismatch: the record names other settings (or cannot be read) and not
            ``overwrite``.
        OSError: the record cannot be written.
    """
    path = Path(out_dir) / SETTINGS_RECORD
    if not overwrite and os.path.lexists(path):
        advice = "rerun with --overwrite to replace its outputs, or choose another output folder"
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))["settings"]
            if not isinstance(recorded, dict):
                raise ValueError("no settings in it")
        except (OSError, ValueError, KeyError, TypeError) as err:
            reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
            raise SettingsMismatch(f"{path}: cannot read the settings record ({reason}); {advice}") from None
        differences = settings_differences(recorded, settings)
        if differences:
            raise SettingsMismatch(
                f"{out_dir}: holds outputs made with other settings ({'; '.join(differences)}); {advice}"
            )
    record = {"format": RECORD_FORMAT, "settings": _plain(settings), "notes": _plain(notes)}
    write_text(path, json.dumps(record, indent=2) + "\n")
    return path
