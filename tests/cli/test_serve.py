"""``iem serve``: its options reach the app and uvicorn; the address is loopback unless asked."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from iem.cli import main

pytest.importorskip("uvicorn", reason="the 'serve' extra is not installed")


def test_help_has_examples():
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "curl -F file=@photo.jpg" in result.output and "127.0.0.1" in result.output


@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("localhost", False), ("0.0.0.0", True)])
def test_options_reach_uvicorn_and_the_app(monkeypatch, host, warned):
    seen = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: seen.update(app=app, **kwargs))
    result = CliRunner().invoke(main, ["serve", "--host", host, "--port", "9123", "--queue-limit", "3",
                                       "--max-upload-mb", "1", "--preset", "released", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (seen["host"], seen["port"]) == (host, 9123)
    settings = seen["app"].state.service.settings
    assert (settings.queue_limit, settings.max_upload_bytes, settings.preset) == (3, 1024 * 1024, "released")
    assert ("warning: listening on" in result.output) == warned
