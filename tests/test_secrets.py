"""Secrets never printed or logged, and every file neo writes readable by its owner only."""

from __future__ import annotations

import stat

import pytest

pytestmark = pytest.mark.slow

TOKEN = "sekret-token-4f9c2e7a1b"


def test_token_appears_nowhere_and_files_are_private(home):
    home.env["TUSHARE_TOKEN"] = TOKEN
    home.configure(
        provider__simulated={"error_rate": 0.2, "symbols": 30},
        retry={"base_delay": 0.1, "max_delay": 0.5},
    )
    outputs = [home.run("start", check=True)]
    outputs.append(home.run("enqueue", "--task-type", "stock_basic", check=True))
    home.wait_idle(timeout=60)
    outputs.append(home.run("enqueue", "--task-type", "daily", check=True))
    home.wait_idle(timeout=120)
    outputs += [
        home.run("status"),
        home.run("status", "--json"),
        home.run("logs", "fast"),
        home.run("dlq", "list"),
    ]
    outputs.append(home.run("enqueue", "--task-type", "nope"))  # an error message
    outputs.append(home.run("stop", check=True))

    for proc in outputs:
        assert TOKEN not in proc.stdout and TOKEN not in proc.stderr
    settings = (home.data / "run" / "settings.json").read_text()
    assert '"token": "***"' in settings

    files = [p for p in home.data.rglob("*") if p.is_file()]
    assert len(files) > 10
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
    for path in [home.data, *[p for p in home.data.rglob("*") if p.is_dir()]]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
