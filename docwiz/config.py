"""Service settings: ``DOCWIZ_*`` environment variables over ``docwiz.toml``.

Precedence, highest first: keyword arguments (tests), environment variables,
the TOML file (``DOCWIZ_CONFIG``, else ``./docwiz.toml`` when present), then
the defaults below, which give the embedded single-machine service.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CommaList = Annotated[list[str], NoDecode]


class ConfigError(Exception):
    """The settings cannot run a service; the message says what to change."""


def _config_file() -> Path | None:
    named = os.environ.get("DOCWIZ_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"DOCWIZ_CONFIG names {path}, which is not a file")
        return path
    default = Path("docwiz.toml")
    return default if default.is_file() else None


class Settings(BaseSettings):
    """Everything an operator can set. Field ``x`` is ``DOCWIZ_X`` in the
    environment and ``x = ...`` at the top of ``docwiz.toml``."""

    model_config = SettingsConfigDict(
        env_prefix="DOCWIZ_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    mode: Literal["embedded", "scale-out"] = "embedded"
    data_dir: Path = Path("var")
    database_url: str | None = None
    redis_url: str | None = None

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    shutdown_timeout: float = Field(default=30.0, gt=0)

    jwt_secret: SecretStr | None = None
    encryption_keys: SecretStr | None = None
    """Comma-separated Fernet keys; the first encrypts, all decrypt."""
    token_ttl_minutes: int = Field(default=60, ge=1, le=24 * 60)

    rate_limit_per_hour: int = Field(default=100, ge=1)
    trusted_proxies: CommaList = []
    """Proxy addresses or networks whose ``X-Forwarded-For`` is believed."""
    login_failures_per_email: int = Field(default=10, ge=1)
    login_failures_per_address: int = Field(default=20, ge=1)
    login_failure_window_minutes: int = Field(default=15, ge=1, le=24 * 60)
    """Failed logins allowed per account and per client address in this window."""
    max_upload_mb: int = Field(default=10, ge=1, le=100)
    image_workers: int = Field(default=2, ge=1, le=64)
    """Photos decoded at once; each 24-megapixel photo needs about 100 MB."""

    seeds_dir: Path = Path(__file__).resolve().parent.parent / "seeds"
    """The data DocWiz ships: ``procedures.json`` and the ``cases/`` demo
    library. The default is the source tree's ``seeds/``."""
    demo_cases: bool = True
    """Offer the shipped demo case library in similar-case results; a practice
    that imported its own cases turns it off."""

    storage_backend: str = "local"
    image_generator: str = "offline"
    text_generator: str = "template"
    pricing_source: str | None = None
    claim_renderer: str | None = None
    plugins_allow: CommaList | None = None
    """Entry-point names to load; unset loads every installed plugin."""
    plugins_block: CommaList = []
    plugins: dict[str, dict[str, Any]] = {}
    """Options per provider name: ``[plugins.s3] bucket = "..."`` or
    ``DOCWIZ_PLUGINS__S3__BUCKET``."""

    admin_email: str | None = None
    admin_password: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("trusted_proxies", "plugins_allow", "plugins_block", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("trusted_proxies", mode="after")
    @classmethod
    def _proxies_are_addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value

    @field_validator("plugins", mode="after")
    @classmethod
    def _lower_provider_names(cls, value: dict[str, dict[str, Any]]) -> Any:
        return {name.lower(): options for name, options in value.items()}

    @model_validator(mode="after")
    def _scale_out_needs_servers(self) -> Settings:
        if self.mode == "scale-out":
            missing = [
                f"DOCWIZ_{name.upper()}"
                for name in (
                    "database_url",
                    "redis_url",
                    "jwt_secret",
                    "encryption_keys",
                )
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(
                    "scale-out mode needs " + ", ".join(missing) + " to be set"
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _config_file()
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url is None:
            return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'docwiz.db'}"
        url = self.database_url
        for plain in ("postgresql://", "postgres://"):
            if url.startswith(plain):
                return "postgresql+asyncpg://" + url[len(plain) :]
        return url

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    def provider_options(self, name: str) -> dict[str, Any]:
        return dict(self.plugins.get(name.lower(), {}))


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning validation errors into one clear message."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None


@dataclass(frozen=True)
class Secrets:
    """Key material the service signs and encrypts with."""

    jwt_secret: bytes
    encryption_keys: tuple[bytes, ...]


def _read_or_create_secret(path: Path, make: Any) -> bytes:
    """Return the secret in ``path``, creating it (mode 0600) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(
                f"{path} is readable by other users (mode {mode:o}); "
                "run chmod 600 on it"
            ) from None
        return path.read_bytes().strip()
    value: bytes = make()
    with os.fdopen(fd, "wb") as handle:
        handle.write(value)
    return value


def resolve_secrets(settings: Settings) -> Secrets:
    """Secrets from the environment (scale-out) or the data folder (embedded)."""
    # The data folder holds patient photos and the database: private to us.
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if settings.jwt_secret is not None:
        jwt_secret = settings.jwt_secret.get_secret_value().encode()
    elif settings.mode == "embedded":
        jwt_secret = _read_or_create_secret(
            settings.data_dir / "secrets" / "jwt_secret",
            lambda: secrets.token_urlsafe(48).encode(),
        )
    else:  # pragma: no cover - refused by the settings validator
        raise ConfigError("DOCWIZ_JWT_SECRET must be set in scale-out mode")

    if len(jwt_secret) < 32:
        raise ConfigError("the JWT secret must be at least 32 bytes long")

    if settings.encryption_keys is not None:
        raw_keys = settings.encryption_keys.get_secret_value()
        keys = tuple(k.strip().encode() for k in raw_keys.split(",") if k.strip())
    else:
        keys = (
            _read_or_create_secret(
                settings.data_dir / "secrets" / "field_key", Fernet.generate_key
            ),
        )
    for key in keys:
        try:
            Fernet(key)
        except ValueError:
            raise ConfigError(
                "every encryption key must be a Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from None
    return Secrets(jwt_secret=jwt_secret, encryption_keys=keys)
