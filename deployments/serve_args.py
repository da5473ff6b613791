"""Settings inside the cluster from a Serve config's `args` (written by `posray serve-config`).

The application builder (deployments/app.py) runs on a Ray node: defaults < the node's POSRAY_*
variables < the config's args. Imports no Ray, so `posray serve-config` checks its own output
with the same code.
"""

from __future__ import annotations

from dataclasses import fields

from posray.settings import Settings, SettingsError, _parse

# Connection settings a config may leave out (they carry passwords): then the node's environment.
CREDENTIAL_FIELDS = ("redis_url", "pg_dsn")


def settings_from_args(args: dict | None, environ: dict | None = None) -> Settings:
    """Settings inside the cluster: defaults < POSRAY_* of the node < the config's args.

    Raises:
        SettingsError: an unknown setting, a value of the wrong type (naming `args.<name>`), or
            no Redis URL or PostgreSQL DSN at all.
    """
    known = {f.name: str(f.type) for f in fields(Settings)}
    values = {}
    for name, value in (args or {}).items():
        if name not in known:
            raise SettingsError(f"args.{name} is not a posray setting")
        kind = known[name]
        if isinstance(value, str):
            value = _parse(f"args.{name}", kind, value)
        elif isinstance(value, list):
            value = _parse(f"args.{name}", kind, ",".join(str(v) for v in value))
        elif isinstance(value, bool) != kind.startswith("bool"):
            raise SettingsError(f"args.{name}={value!r} is not a valid {kind}")
        elif kind.startswith("float") and isinstance(value, int):
            value = float(value)
        elif kind.startswith("int") and not isinstance(value, int):
            raise SettingsError(f"args.{name}={value!r} is not a valid {kind}")
        values[name] = value
    settings = Settings.from_env(environ, **values)
    for name in CREDENTIAL_FIELDS:
        if getattr(settings, name) is None:
            raise SettingsError(f"{name} is neither in the Serve config's args nor POSRAY_{name.upper()}"
                                " in the environment of the Ray node")
    return settings
