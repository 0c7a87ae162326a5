"""Configuration: one frozen, validated `Settings` built from four layers.

Precedence, highest first: command-line flags > environment (`NEO_HOME`, `TUSHARE_TOKEN`) >
the config file (`--config`, else `NEO_CONFIG`, else `./configs/neo.toml` when present) > the
defaults below. Every bad value is reported as one line naming the key, the value, where it came
from and what is allowed.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from neo_cli.errors import InputError
from neo_cli.inputs import read_input
from neo_cli.schedule.cron import HELP as CRON_HELP
from neo_cli.schedule.cron import Cron, zone
from neo_cli.tasktypes import INTERFACES, TASK_TYPES, dataset, task_type

DEFAULT_CONFIG = Path("configs") / "neo.toml"


@dataclass(frozen=True)
class Key:
    """How one config key is checked: its type, bounds or choices, and its default."""

    default: Any
    kind: type = str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    secret: bool = False
    # A check beyond the type: returns the value normalized, or raises ValueError saying what
    # is wrong with it ("hour 25 is out of range 0-23"); `help` then says what is allowed.
    validator: Callable[[Any], Any] | None = None
    help: str = ""

    def allowed(self) -> str:
        if self.help:
            return self.help
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        noun = {int: "a whole number", float: "a number", bool: "true or false"}.get(
            self.kind, "a string"
        )
        if self.minimum is not None and self.maximum is not None:
            return f"{noun} from {_num(self.minimum)} to {_num(self.maximum)}"
        if self.minimum is not None:
            return f"{noun} >= {_num(self.minimum)}"
        return noun

    def check(self, value: Any) -> Any:
        """Return the value converted to this key's type, or raise ValueError."""
        try:
            value = self._typed(value)
        except (ValueError, TypeError):
            raise ValueError from None  # "allowed: …" says it; int()'s own text would not
        return self.validator(value) if self.validator else value

    def _typed(self, value: Any) -> Any:
        if self.kind is list:
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ValueError
            return list(value)
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                return value.lower() in ("true", "1")
            raise ValueError
        if self.kind in (int, float):
            if isinstance(value, bool):
                raise ValueError
            if self.kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            number = self.kind(value) if not isinstance(value, str) else self.kind(value.strip())
            if not math.isfinite(number):
                raise ValueError
            if self.minimum is not None and number < self.minimum:
                raise ValueError
            if self.maximum is not None and number > self.maximum:
                raise ValueError
            return number
        if isinstance(value, bool) and self.choices and str(value).lower() in self.choices:
            return str(value).lower()  # `statements_vip = true`: TOML's boolean, a choice here
        if not isinstance(value, str):
            raise ValueError
        if self.choices and value not in self.choices:
            raise ValueError
        return value


def _cron(value: str) -> str:
    if value.strip():
        Cron.parse(value, "UTC")  # the zone is its own key
    return value.strip()


def _name(value: str) -> str:
    """A name that goes into Redis keys as it is."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value):
        raise ValueError
    return value


def _host(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,253}", value.strip()):
        raise ValueError
    return value.strip()


BUILT_IN_PROVIDERS = ("simulated", "tushare")
_FACTORY = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*")


def _provider(value: str) -> str:
    """A built-in provider, or 'package.module:factory' importable here and callable."""
    value = value.strip()
    if value in BUILT_IN_PROVIDERS:
        return value
    if not _FACTORY.fullmatch(value):
        raise ValueError
    from neo_cli.providers import load_factory

    load_factory(value)  # raises ValueError saying what is missing
    return value


def _zone(value: str) -> str:
    zone(value)
    return value


def _task_types(names: list[str]) -> list[str]:
    if not names:
        raise ValueError("no task type listed")
    known = {t.name for t in TASK_TYPES} | {a for t in TASK_TYPES for a in t.aliases}
    for name in names:
        if name.strip().lower() not in known:
            raise ValueError(f"unknown task type {name!r}")
    return list(dict.fromkeys(task_type(n).name for n in names))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# The public schema. Section and key names are part of neo's interface: add, never rename.
SCHEMA: dict[str, dict[str, Key]] = {
    "paths": {"data_dir": Key("data")},
    "queue": {
        "storage": Key("sqlite", choices=("sqlite", "redis")),
        "redis_url": Key("redis://127.0.0.1:6379/0"),
        # With storage = "redis": this database's queues on that Redis. Every machine working
        # for one database uses the same name; two databases on one Redis use two.
        "cluster": Key("neo", validator=_name, help="letters, digits, '-', '_' or '.'"),
        # storage = "redis": a task a worker took goes back on its queue this long after its
        # consumer stopped renewing (SIGKILL, power or network lost).
        "lease_seconds": Key(30.0, float, 3, 3600),
        "max_pending": Key(200_000, int, 1, 100_000_000),
        "fsync": Key(True, bool),
    },
    "fast": {
        "workers": Key(50, int, 1, 1000),
        "call_timeout": Key(30.0, float, 0.1, 3600),
        "max_save_backlog": Key(2000, int, 1, 10_000_000),
        "min_free_memory_mb": Key(256, int, 0, 1_000_000),
        # How often the fast consumer looks for downloads the queue lost; one missing in two
        # looks in a row is enqueued again.
        "lost_sweep_seconds": Key(20.0, float, 0.5, 3600),
    },
    "slow": {
        "workers": Key(4, int, 1, 64),
        "batch_size": Key(1000, int, 1, 10_000_000),
        "batch_timeout": Key(30.0, float, 0.01, 86_400),
        "idle_flush": Key(2.0, float, 0.01, 86_400),
        # Most seconds the database file stays open across back-to-back flushes (opening and
        # closing it cost more than writing 1,000 rows); 0 = closed after every flush.
        "hold_seconds": Key(1.0, float, 0, 60),
        "memory_limit": Key("512MB"),
    },
    "ledger": {
        # Saved units are forgotten after this many days (their coverage, the catalog and
        # dead letters stay): the ledger does not grow with every daily run.
        "keep_days": Key(30, int, 1, 36_500),
    },
    "retry": {
        "max_attempts": Key(6, int, 1, 100),
        "base_delay": Key(2.0, float, 0, 3600),
        "max_delay": Key(120.0, float, 0, 86_400),
    },
    "limiter": {
        "backend": Key("local", choices=("local", "redis")),
        "margin_seconds": Key(0.6, float, 0, 30),
        "lookahead_seconds": Key(1.0, float, 0.05, 60),
    },
    "supervisor": {
        "restart_base_delay": Key(1.0, float, 0, 3600),
        "restart_max_delay": Key(60.0, float, 0, 86_400),
        "min_uptime": Key(10.0, float, 0, 3600),
        "stable_after": Key(60.0, float, 0, 86_400),
        "max_quick_failures": Key(5, int, 1, 1000),
        "ready_timeout": Key(60.0, float, 1, 3600),
        # Which consumers this machine runs: "all" (one machine), "fast" (downloads only:
        # never touches DuckDB or the ledger) or "slow" (the one writer, beside the DuckDB
        # file and the ledger). fast and slow need [queue] storage = "redis".
        "role": Key("all", choices=("all", "fast", "slow")),
    },
    "plan": {
        "multi_symbol": Key(True, bool),
        "whole_market": Key(True, bool),
        "max_codes_per_call": Key(100, int, 1, 1000),
        # income_vip & co.: "auto" tries them and falls back to per-symbol calls for good on
        # the first permission refusal; "true" insists (a refusal stops them); "false" never.
        "statements_vip": Key("auto", choices=("auto", "true", "false")),
    },
    "schedule": {
        # The daily update the supervisor runs by itself ("" = none); `neo start
        # --no-schedule` turns it off for one run.
        "update": Key(
            "30 18 * * 1-5", validator=_cron, help=f'a cron expression {CRON_HELP}, or "" for none'
        ),
        "timezone": Key(
            "Asia/Shanghai", validator=_zone, help="an IANA time zone name, e.g. Asia/Shanghai"
        ),
        "task_types": Key(
            ["stock_basic", "daily_qfq", "income", "balancesheet", "cashflow"],
            list,
            validator=_task_types,
            help="a list of task types from " + ", ".join(t.name for t in TASK_TYPES),
        ),
        # How long a type that plans from the symbol list waits for stock_basic's rows.
        "wait_minutes": Key(30.0, float, 1, 1440),
    },
    "metrics": {
        # /metrics (Prometheus) and /api/status, served by the supervisor; 0 = off.
        "port": Key(0, int, 0, 65535),
        "bind": Key("127.0.0.1", validator=_host, help="an IP address or host name to listen on"),
    },
    "provider": {
        "name": Key(
            "simulated",
            validator=_provider,
            help="'simulated', 'tushare', or a provider of your own as 'package.module:factory'",
        )
    },
    "provider.simulated": {
        "symbols": Key(300, int, 1, 20_000),
        "seed": Key(20240101, int, 0, 2**31),
        "end_date": Key(""),
        "latency_ms": Key(30.0, float, 0, 60_000),
        "jitter_ms": Key(20.0, float, 0, 60_000),
        "timeout_rate": Key(0.0, float, 0, 1),
        "error_rate": Key(0.0, float, 0, 1),
        "malformed_rate": Key(0.0, float, 0, 1),
        "deny_symbols": Key(""),
    },
    "provider.tushare": {
        "url": Key("http://api.tushare.pro"),
        "token": Key("", secret=True),
    },
    "rate_limits": {
        "stock_basic": Key(60, int, 1, 1_000_000),
        "daily": Key(500, int, 1, 1_000_000),
        "adj_factor": Key(500, int, 1, 1_000_000),
        "income": Key(200, int, 1, 1_000_000),
        "balancesheet": Key(200, int, 1, 1_000_000),
        "cashflow": Key(200, int, 1, 1_000_000),
        "income_vip": Key(200, int, 1, 1_000_000),
        "balancesheet_vip": Key(200, int, 1, 1_000_000),
        "cashflow_vip": Key(200, int, 1, 1_000_000),
        "trade_cal": Key(100, int, 1, 1_000_000),  # the calendar the planner asks for
    },
    # Most rows one call returns, per interface (the API's documented caps). A reply this long,
    # or with has_more, is never taken for the whole range.
    "row_caps": {api: Key(dataset(api).row_cap, int, 1, 1_000_000) for api in INTERFACES},
}
assert set(SCHEMA["rate_limits"]) == {*INTERFACES, "trade_cal"}


@dataclass(frozen=True)
class Settings:
    """Every setting, validated. `values[section][key]`; `source` says where each came from."""

    values: Mapping[str, Mapping[str, Any]]
    config_file: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    def get(self, dotted: str) -> Any:
        section, _, key = dotted.rpartition(".")
        return self.values[section][key]

    # The settings the core reads most, named.
    @property
    def data_dir(self) -> Path:
        return Path(self.values["paths"]["data_dir"])

    @property
    def rate_limits(self) -> dict[str, int]:
        return dict(self.values["rate_limits"])

    @property
    def row_caps(self) -> dict[str, int]:
        return dict(self.values["row_caps"])

    @property
    def token(self) -> str:
        return self.values["provider.tushare"]["token"]

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "flag") -> Settings:
        """A copy with dotted keys replaced (validated like any other layer)."""
        raw = {s: dict(v) for s, v in self.values.items()}
        sources = dict(self.sources)
        for dotted, value in overrides.items():
            if value is None:
                continue
            section, _, key = dotted.rpartition(".")
            raw[section][key] = value
            sources[dotted] = source
        return replace(self, values=_validate(raw, sources), sources=sources)

    def public(self) -> dict[str, dict[str, Any]]:
        """The settings with secrets masked, for display and for files under the data dir
        (a password in a URL included: redis://:pw@host)."""
        return {
            s: {k: ("***" if SCHEMA[s][k].secret and v else mask_url(v)) for k, v in kv.items()}
            for s, kv in self.values.items()
        }


def mask_url(value: Any) -> Any:
    if isinstance(value, str) and "://" in value and "@" in value:
        scheme, rest = value.split("://", 1)
        auth, _, host = rest.rpartition("@")
        user = auth.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in auth else value
    return value


def _flatten(doc: Mapping[str, Any], origin: str) -> dict[str, dict[str, Any]]:
    """TOML tables -> {"section": {key: value}}, rejecting unknown sections and keys."""
    out: dict[str, dict[str, Any]] = {}

    def walk(table: Mapping[str, Any], prefix: str) -> None:
        for name, value in table.items():
            dotted = f"{prefix}.{name}" if prefix else name
            if isinstance(value, dict):
                if dotted not in SCHEMA and not any(s.startswith(dotted + ".") for s in SCHEMA):
                    raise InputError(
                        f"unknown section [{_printable(dotted)}] in {origin}; allowed: "
                        + ", ".join(f"[{s}]" for s in SCHEMA)
                    )
                walk(value, dotted)
                continue
            if prefix not in SCHEMA or name not in SCHEMA[prefix]:
                where = f"[{prefix}]" if prefix else "the top level"
                allowed = ", ".join(SCHEMA[prefix]) if prefix in SCHEMA else "none (use a section)"
                raise InputError(
                    f"unknown key {name!r} in {_printable(where)} of {origin}; allowed: {allowed}"
                )
            out.setdefault(prefix, {})[name] = value

    walk(doc, "")
    return out


def _printable(text: str) -> str:
    """Names from a file go into one-line messages: escape what would break the line."""
    return text if text.isprintable() else repr(text)


def _validate(raw: Mapping[str, Mapping[str, Any]], sources: Mapping[str, str]) -> dict:
    values: dict[str, dict[str, Any]] = {}
    for section, keys in SCHEMA.items():
        values[section] = {}
        for name, key in keys.items():
            value = raw.get(section, {}).get(name, key.default)
            try:
                values[section][name] = key.check(value)
            except (ValueError, TypeError) as exc:
                dotted = f"{section}.{name}"
                shown = "***" if key.secret else repr(value)
                origin = sources.get(dotted, "defaults")
                why = f": {exc}" if str(exc) else ""
                raise InputError(
                    f"invalid [{section}] {name} = {shown} (from {origin}){why}; "
                    f"allowed: {key.allowed()}"
                ) from None
    role = values["supervisor"]["role"]
    if role != "all" and values["queue"]["storage"] != "redis":
        raise InputError(
            f"role {role!r} (from {sources.get('supervisor.role', 'defaults')}) needs "
            '[queue] storage = "redis": the queues every machine shares; allowed on one '
            "machine: 'all'"
        )
    if "redis" in (values["queue"]["storage"], values["limiter"]["backend"]):
        origin = sources.get("queue.redis_url", "defaults")
        check_redis_url(values["queue"]["redis_url"], origin)
    return values


def check_redis_url(url: str, origin: str = "defaults") -> str:
    """Raise InputError unless `url` is a Redis URL the client can use."""
    allowed = "redis://[:password@]host[:port][/db], rediss://… or unix:///path"
    try:
        parts = urlsplit(url)
        ok = (parts.scheme in ("redis", "rediss") and bool(parts.hostname)) or (
            parts.scheme == "unix" and bool(parts.path)
        )
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        db = parts.path.strip("/")
        ok = ok and (parts.scheme == "unix" or db == "" or db.isdigit())
    except ValueError:
        ok = False
    if not ok:
        raise InputError(
            f"invalid [queue] redis_url = {mask_url(url)!r} (from {origin}); allowed: {allowed}"
        )
    return url


ENV_KEYS: dict[str, str] = {"NEO_HOME": "paths.data_dir", "TUSHARE_TOKEN": "provider.tushare.token"}


def load(
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Build Settings from defaults, the config file, the environment and flag overrides."""
    env = os.environ if environ is None else environ
    cwd = cwd or Path.cwd()
    path: Path | None
    if config_file is not None:
        path, origin = Path(config_file), "--config"
    elif env.get("NEO_CONFIG"):
        path, origin = Path(env["NEO_CONFIG"]), "NEO_CONFIG"
    else:
        default = cwd / DEFAULT_CONFIG
        path, origin = (default, "default") if default.is_file() else (None, "")

    raw: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    if path is not None:
        path = path if path.is_absolute() else cwd / path
        raw = _flatten(_read_toml(path, origin), str(path))
        sources = {f"{s}.{k}": str(path) for s, kv in raw.items() for k in kv}

    for var, dotted in ENV_KEYS.items():
        if env.get(var):
            section, _, key = dotted.rpartition(".")
            raw.setdefault(section, {})[key] = env[var]
            sources[dotted] = f"${var}"

    for dotted, value in (overrides or {}).items():
        if value is not None:
            section, _, key = dotted.rpartition(".")
            raw.setdefault(section, {})[key] = value
            sources[dotted] = _flag_name(dotted)

    values = _validate(raw, sources)
    data_dir = Path(values["paths"]["data_dir"]).expanduser()
    values["paths"]["data_dir"] = str(data_dir if data_dir.is_absolute() else cwd / data_dir)
    return Settings(values=values, config_file=path, sources=sources)


def _read_toml(path: Path, origin: str) -> dict[str, Any]:
    data = read_input(path, "config file", origin)
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"config file {path} is not valid TOML: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config file {path} is not valid TOML: {exc}") from None


_FLAGS: dict[str, str] = {}


def _flag_name(dotted: str) -> str:
    return _FLAGS.get(dotted, f"flag for {dotted}")


def register_flag(dotted: str, flag: str) -> None:
    """Let error messages name the flag a value came from (`--fast-workers`)."""
    _FLAGS[dotted] = flag


def restore(
    values: Mapping[str, Mapping[str, Any]], environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings saved with `public()` (secrets masked), secrets taken back from the environment.

    The supervisor hands its consumers the settings it resolved this way, so a consumer it
    restarts later runs with the same settings, and the token never touches the disk."""
    env = os.environ if environ is None else environ
    raw = {s: dict(kv) for s, kv in values.items()}
    for section, keys in SCHEMA.items():
        for name, key in keys.items():
            if key.secret:
                raw.setdefault(section, {})[name] = ""
    raw.setdefault("provider.tushare", {})["token"] = env.get("TUSHARE_TOKEN", "")
    if env.get("NEO_REDIS_URL"):
        raw.setdefault("queue", {})["redis_url"] = env["NEO_REDIS_URL"]
    return Settings(values=_validate(raw, {}), sources={})


def child_env(settings: Settings) -> dict[str, str]:
    """The environment for a process neo starts: the secrets `restore` takes back, which
    travel this way instead of through files."""
    return {
        **os.environ,
        "TUSHARE_TOKEN": settings.token,
        "NEO_REDIS_URL": settings.values["queue"]["redis_url"],
    }
