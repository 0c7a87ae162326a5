"""Configuration: defaults < file < environment < flags, and one clear line for every bad value."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from neo_cli import config
from neo_cli.config import SCHEMA, Settings, load, restore
from neo_cli.errors import InputError

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "configs" / "neo.toml"
SECRET = "s3cr3t-t0ken-value"


def toml(tmp_path: Path, text: str, name: str = "neo.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_in(tmp_path: Path, config_file=None, overrides=None, environ=None) -> Settings:
    return load(config_file, overrides, environ={} if environ is None else environ, cwd=tmp_path)


def refused(tmp_path: Path, text: str | None = None, **kw) -> str:
    """The one-line message `load` refuses with."""
    if text is not None:
        kw.setdefault("config_file", toml(tmp_path, text))
    with pytest.raises(InputError) as info:
        load_in(tmp_path, **kw)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    assert "Traceback" not in message
    return message


def defaults() -> dict[str, dict]:
    return {s: {k: key.default for k, key in keys.items()} for s, keys in SCHEMA.items()}


# --------------------------------------------------------------------------- layers


def test_defaults_without_any_file(tmp_path: Path) -> None:
    s = load_in(tmp_path)
    assert s.config_file is None
    expected = defaults()
    expected["paths"]["data_dir"] = str(tmp_path / "data")
    assert s.values == expected
    assert s.sources == {}
    assert s.data_dir == tmp_path / "data"
    assert s.rate_limits == {
        "stock_basic": 60,
        "daily": 500,
        "adj_factor": 500,
        "income": 200,
        "balancesheet": 200,
        "cashflow": 200,
        "income_vip": 200,
        "balancesheet_vip": 200,
        "cashflow_vip": 200,
        "trade_cal": 100,
    }
    assert s.row_caps["daily"] == 6000 and s.row_caps["income_vip"] == 5000
    assert s.values["plan"]["statements_vip"] == "auto"
    assert s.get("slow.batch_size") == 1000
    assert s.get("provider.tushare.url") == "http://api.tushare.pro"
    assert s.token == ""


def test_file_beats_defaults(tmp_path: Path) -> None:
    path = toml(
        tmp_path,
        """
[paths]
data_dir = "/srv/neo"
[fast]
workers = 12
[slow]
batch_timeout = 5
[queue]
fsync = false
[provider]
name = "tushare"
[rate_limits]
daily = 1200
""",
    )
    s = load_in(tmp_path, path)
    assert s.config_file == path
    assert s.data_dir == Path("/srv/neo")
    assert s.get("fast.workers") == 12
    assert s.get("slow.batch_timeout") == 5.0 and isinstance(s.get("slow.batch_timeout"), float)
    assert s.get("queue.fsync") is False
    assert s.get("provider.name") == "tushare"
    assert s.rate_limits["daily"] == 1200
    assert s.get("slow.workers") == 4  # untouched keys keep their defaults
    assert s.sources["fast.workers"] == str(path)
    assert "slow.workers" not in s.sources


def test_environment_beats_file_and_flags_beat_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(config, "_FLAGS", {})  # the CLI, when imported, names its flags
    path = toml(
        tmp_path,
        """
[paths]
data_dir = "from-file"
[provider.tushare]
token = "file-token"
[fast]
workers = 10
""",
    )
    env = {"NEO_HOME": "/env/home", "TUSHARE_TOKEN": "env-token"}
    s = load_in(tmp_path, path, environ=env)
    assert s.data_dir == Path("/env/home")
    assert s.token == "env-token"
    assert s.get("fast.workers") == 10
    assert s.sources["paths.data_dir"] == "$NEO_HOME"
    assert s.sources["provider.tushare.token"] == "$TUSHARE_TOKEN"

    flags = {"paths.data_dir": "from-flag", "fast.workers": 20, "slow.workers": None}
    s = load_in(tmp_path, path, overrides=flags, environ=env)
    assert s.data_dir == tmp_path / "from-flag"
    assert s.get("fast.workers") == 20
    assert s.get("slow.workers") == 4  # None means "flag not given"
    assert s.sources["fast.workers"] == "flag for fast.workers"


def test_empty_environment_variables_are_ignored(tmp_path: Path) -> None:
    path = toml(tmp_path, '[paths]\ndata_dir = "/from/file"\n')
    s = load_in(tmp_path, path, environ={"NEO_HOME": "", "TUSHARE_TOKEN": "", "NEO_CONFIG": ""})
    assert s.data_dir == Path("/from/file")
    assert s.token == ""


def test_neo_config_selects_the_file_and_config_flag_beats_it(tmp_path: Path) -> None:
    a = toml(tmp_path, "[fast]\nworkers = 7\n", "a.toml")
    b = toml(tmp_path, "[fast]\nworkers = 8\n", "b.toml")
    assert load_in(tmp_path, environ={"NEO_CONFIG": str(a)}).get("fast.workers") == 7
    assert load_in(tmp_path, b, environ={"NEO_CONFIG": str(a)}).get("fast.workers") == 8
    # A relative NEO_CONFIG is relative to the working directory.
    s = load_in(tmp_path, environ={"NEO_CONFIG": "a.toml"})
    assert s.config_file == a


def test_default_file_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    toml(tmp_path / "configs", "[slow]\nworkers = 3\n")
    s = load_in(tmp_path)
    assert s.config_file == tmp_path / "configs" / "neo.toml"
    assert s.get("slow.workers") == 3
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert load(None, environ={}, cwd=other).config_file is None


def test_relative_data_dir_resolves_against_cwd(tmp_path: Path) -> None:
    path = toml(tmp_path, '[paths]\ndata_dir = "sub/data"\n')
    assert load_in(tmp_path, path).data_dir == tmp_path / "sub" / "data"
    assert load_in(tmp_path, environ={"NEO_HOME": "rel"}).data_dir == tmp_path / "rel"
    home = load_in(tmp_path, environ={"NEO_HOME": "~/x"}).data_dir
    assert home == Path("~/x").expanduser() and home.is_absolute()


def test_relative_config_path_resolves_against_cwd(tmp_path: Path) -> None:
    toml(tmp_path, "[fast]\nworkers = 9\n", "rel.toml")
    s = load_in(tmp_path, "rel.toml")
    assert s.config_file == tmp_path / "rel.toml"
    assert s.get("fast.workers") == 9


def test_flag_values_arrive_as_text_and_are_converted(tmp_path: Path) -> None:
    s = load_in(
        tmp_path,
        overrides={"fast.workers": " 30 ", "slow.batch_timeout": "2.5", "queue.fsync": "false"},
    )
    assert s.get("fast.workers") == 30
    assert s.get("slow.batch_timeout") == 2.5
    assert s.get("queue.fsync") is False


def test_with_overrides_validates_and_keeps_the_rest(tmp_path: Path) -> None:
    s = load_in(tmp_path)
    t = s.with_overrides({"fast.workers": 5, "slow.workers": None}, source="test")
    assert t.get("fast.workers") == 5 and t.sources["fast.workers"] == "test"
    assert s.get("fast.workers") == 50  # frozen: the original is unchanged
    with pytest.raises(InputError, match=r"invalid \[fast\] workers = 0 \(from test\)"):
        s.with_overrides({"fast.workers": 0}, source="test")


def test_registered_flag_names_appear_in_errors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(config, "_FLAGS", {})
    config.register_flag("fast.workers", "--fast-workers")
    message = refused(tmp_path, overrides={"fast.workers": "lots"})
    assert message == (
        "invalid [fast] workers = 'lots' (from --fast-workers); "
        "allowed: a whole number from 1 to 1000"
    )


# --------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[fast]\nworkers = "many"\n',
            "invalid [fast] workers = 'many' (from {path}); allowed: a whole number from 1 to 1000",
        ),
        (
            "[fast]\nworkers = true\n",
            "invalid [fast] workers = True (from {path}); allowed: a whole number from 1 to 1000",
        ),
        (
            "[fast]\nworkers = 2.5\n",
            "invalid [fast] workers = 2.5 (from {path}); allowed: a whole number from 1 to 1000",
        ),
        (
            "[fast]\nworkers = 0\n",
            "invalid [fast] workers = 0 (from {path}); allowed: a whole number from 1 to 1000",
        ),
        (
            "[fast]\nworkers = [1, 2]\n",
            "invalid [fast] workers = [1, 2] (from {path}); allowed: a whole number from 1 to 1000",
        ),
        (
            "[slow]\nworkers = 65\n",
            "invalid [slow] workers = 65 (from {path}); allowed: a whole number from 1 to 64",
        ),
        (
            "[rate_limits]\ndaily = -5\n",
            "invalid [rate_limits] daily = -5 (from {path}); "
            "allowed: a whole number from 1 to 1000000",
        ),
        (
            "[slow]\nbatch_timeout = 0\n",
            "invalid [slow] batch_timeout = 0 (from {path}); allowed: a number from 0.01 to 86400",
        ),
        (
            '[slow]\nbatch_timeout = "soon"\n',
            "invalid [slow] batch_timeout = 'soon' (from {path}); "
            "allowed: a number from 0.01 to 86400",
        ),
        (
            "[limiter]\nmargin_seconds = -0.1\n",
            "invalid [limiter] margin_seconds = -0.1 (from {path}); allowed: a number from 0 to 30",
        ),
        (
            '[queue]\nstorage = "mysql"\n',
            "invalid [queue] storage = 'mysql' (from {path}); allowed: one of 'sqlite', 'redis'",
        ),
        (
            '[queue]\nfsync = "yes"\n',
            "invalid [queue] fsync = 'yes' (from {path}); allowed: true or false",
        ),
        (
            '[provider]\nname = "Tushare"\n',
            "invalid [provider] name = 'Tushare' (from {path}); allowed: 'simulated', "
            "'tushare', or a provider of your own as 'package.module:factory'",
        ),
        (
            "[paths]\ndata_dir = 5\n",
            "invalid [paths] data_dir = 5 (from {path}); allowed: a string",
        ),
    ],
)
def test_bad_values_name_key_value_source_and_what_is_allowed(tmp_path, text, expected) -> None:
    path = tmp_path / "neo.toml"
    assert refused(tmp_path, text) == expected.format(path=path)


def test_unknown_section(tmp_path: Path) -> None:
    message = refused(tmp_path, "[fats]\nworkers = 5\n")
    assert message.startswith(f"unknown section [fats] in {tmp_path / 'neo.toml'}; allowed: ")
    assert "[fast]" in message and "[provider.tushare]" in message


def test_unknown_subsection(tmp_path: Path) -> None:
    message = refused(tmp_path, "[provider.simulated.extra]\nx = 1\n")
    assert message.startswith("unknown section [provider.simulated.extra]")


def test_unknown_key(tmp_path: Path) -> None:
    message = refused(tmp_path, "[fast]\nworker = 5\n")
    assert message == (
        f"unknown key 'worker' in [fast] of {tmp_path / 'neo.toml'}; "
        "allowed: workers, call_timeout, max_save_backlog, min_free_memory_mb, lost_sweep_seconds"
    )


def test_key_at_the_top_level(tmp_path: Path) -> None:
    message = refused(tmp_path, "workers = 5\n")
    assert message == (
        f"unknown key 'workers' in the top level of {tmp_path / 'neo.toml'}; "
        "allowed: none (use a section)"
    )


def test_a_table_where_a_value_belongs(tmp_path: Path) -> None:
    message = refused(tmp_path, "[fast]\nworkers = { n = 5 }\n")
    assert message.startswith("unknown section [fast.workers]")


@pytest.mark.parametrize(
    "key",
    [
        "slow.batch_timeout",
        "limiter.margin_seconds",
        "limiter.lookahead_seconds",
        "fast.call_timeout",
    ],
)
def test_nan_is_refused_for_number_keys(tmp_path: Path, key: str) -> None:
    section, _, name = key.rpartition(".")
    message = refused(tmp_path, f"[{section}]\n{name} = nan\n")
    assert f"invalid [{section}] {name} = nan" in message


def test_infinity_is_refused_for_bounded_number_keys(tmp_path: Path) -> None:
    message = refused(tmp_path, "[fast]\ncall_timeout = inf\n")
    assert message.startswith("invalid [fast] call_timeout = inf")


def test_unknown_section_with_a_newline_in_its_name_is_still_one_line(tmp_path: Path) -> None:
    message = refused(tmp_path, '["fa\\nst"]\nworkers = 5\n')
    assert "unknown section" in message


def test_unknown_key_with_a_newline_in_its_name_is_one_line(tmp_path: Path) -> None:
    message = refused(tmp_path, '[fast]\n"wor\\nkers" = 5\n')
    assert message.startswith("unknown key 'wor\\nkers' in [fast]")


# --------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert refused(tmp_path, config_file=path) == (
        f"config file {path} (from --config) does not exist"
    )
    assert refused(tmp_path, environ={"NEO_CONFIG": str(path)}) == (
        f"config file {path} (from NEO_CONFIG) does not exist"
    )


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert refused(tmp_path, config_file=tmp_path) == (
        f"config file {tmp_path} (from --config) is a directory, not a file"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a chmod 000 file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = toml(tmp_path, "[fast]\nworkers = 5\n")
    path.chmod(0)
    try:
        assert refused(tmp_path, config_file=path) == (
            f"config file {path} (from --config) is not readable"
        )
    finally:
        path.chmod(0o644)


def test_not_toml(tmp_path: Path) -> None:
    message = refused(tmp_path, "[fast\nworkers = = 5\n")
    assert message.startswith(f"config file {tmp_path / 'neo.toml'} is not valid TOML: ")
    assert "line 1" in message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "neo.toml"
    path.write_bytes(b'[paths]\ndata_dir = "\xff\xfe\xfa"\n')
    assert refused(tmp_path, config_file=path) == (
        f"config file {path} is not valid TOML: not UTF-8 text"
    )


# --------------------------------------------------------------------------- secrets


def test_public_masks_the_token(tmp_path: Path) -> None:
    s = load_in(tmp_path, environ={"TUSHARE_TOKEN": SECRET})
    public = s.public()
    assert public["provider.tushare"]["token"] == "***"
    assert SECRET not in json.dumps(public)
    assert load_in(tmp_path).public()["provider.tushare"]["token"] == ""  # nothing to hide
    assert public["fast"] == s.values["fast"]


def test_a_bad_token_value_is_not_printed(tmp_path: Path) -> None:
    message = refused(tmp_path, "[provider.tushare]\ntoken = 123456789\n")
    assert message == (
        f"invalid [provider.tushare] token = *** (from {tmp_path / 'neo.toml'}); allowed: a string"
    )
    message = refused(tmp_path, overrides={"provider.tushare.token": 987654321})
    assert "987654321" not in message and "***" in message


def test_the_token_never_appears_in_other_errors(tmp_path: Path) -> None:
    text = f'[provider.tushare]\ntoken = "{SECRET}"\n[fast]\nworkers = 0\n'
    assert SECRET not in refused(tmp_path, text)
    assert SECRET not in refused(tmp_path, f'[provider.tushare]\ntoken = "{SECRET}\n')
    assert SECRET not in refused(tmp_path, f'[provider.tushare]\ntoken = "{SECRET}"\nx = 1\n')
    assert SECRET not in refused(
        tmp_path, "[fast]\nworkers = 0\n", environ={"TUSHARE_TOKEN": SECRET}
    )


def test_restore_round_trip_takes_the_token_from_the_environment(tmp_path: Path) -> None:
    path = toml(tmp_path, '[fast]\nworkers = 11\n[provider]\nname = "tushare"\n')
    s = load_in(tmp_path, path, environ={"TUSHARE_TOKEN": SECRET, "NEO_HOME": str(tmp_path)})
    saved = json.loads(json.dumps(s.public()))  # as the supervisor writes it to disk
    assert SECRET not in json.dumps(saved)
    back = restore(saved, environ={"TUSHARE_TOKEN": SECRET, "NEO_HOME": "/elsewhere"})
    assert back.values == s.values
    assert back.token == SECRET
    assert back.data_dir == tmp_path  # the resolved value, not the environment's new one
    without = restore(saved, environ={})
    assert without.token == ""
    assert without.get("fast.workers") == 11


def test_restore_never_uses_the_masked_value(tmp_path: Path) -> None:
    s = load_in(tmp_path, environ={"TUSHARE_TOKEN": SECRET})
    assert restore(s.public(), environ={}).token != "***"


# --------------------------------------------------------------------------- shipped file


def test_shipped_config_loads_and_documents_every_key(tmp_path: Path) -> None:
    if not SHIPPED.is_file():
        pytest.skip("configs/neo.toml is not there yet")
    s = load_in(tmp_path, SHIPPED)
    expected = defaults()
    expected["paths"]["data_dir"] = str(tmp_path / "data")
    assert s.values == expected  # the shipped file states the defaults
    text = SHIPPED.read_text(encoding="utf-8")
    for section, keys in SCHEMA.items():
        assert f"[{section}]" in text, section
        for name in keys:
            assert f"\n{name} =" in text, f"{section}.{name}"


@pytest.mark.parametrize(
    ("text", "want"), [("true", "true"), ("false", "false"), ('"auto"', "auto")]
)
def test_statements_vip_takes_auto_or_a_boolean(tmp_path: Path, text: str, want: str) -> None:
    path = toml(tmp_path, f"[plan]\nstatements_vip = {text}\n")
    assert load_in(tmp_path, path).values["plan"]["statements_vip"] == want


def test_statements_vip_and_row_caps_refuse_what_is_not_allowed(tmp_path: Path) -> None:
    message = refused(tmp_path, '[plan]\nstatements_vip = "maybe"\n')
    assert "invalid [plan] statements_vip = 'maybe'" in message
    assert "'auto', 'true', 'false'" in message
    message = refused(tmp_path, "[row_caps]\ndaily = 0\n")
    assert "invalid [row_caps] daily = 0" in message and "from 1 to" in message
    message = refused(tmp_path, "[row_caps]\nminute = 10\n")
    assert "unknown key 'minute' in [row_caps]" in message and "income_vip" in message
