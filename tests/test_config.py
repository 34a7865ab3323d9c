"""Settings precedence, scale-out requirements and the generated secrets."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from docwiz.config import ConfigError, Settings, load_settings, resolve_secrets


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_are_the_embedded_service(tmp_path: Path) -> None:
    settings = load_settings()

    assert settings.mode == "embedded"
    assert settings.data_dir == Path("var")
    assert settings.resolved_database_url == (
        f"sqlite+aiosqlite:///{tmp_path / 'var' / 'docwiz.db'}"
    )
    assert (settings.storage_backend, settings.image_generator) == ("local", "offline")
    assert settings.rate_limit_per_hour == 100
    assert settings.token_ttl_minutes == 60


def test_environment_beats_toml_beats_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_toml(
        tmp_path / "docwiz.toml",
        'port = 9000\nrate_limit_per_hour = 50\nimage_generator = "gemini"\n'
        '[plugins.gemini]\nmodel = "from-toml"\n',
    )
    monkeypatch.setenv("DOCWIZ_PORT", "9100")
    monkeypatch.setenv("DOCWIZ_PLUGINS__GEMINI__API_KEY", "k-123")

    settings = load_settings()

    assert settings.port == 9100
    assert settings.rate_limit_per_hour == 50
    assert settings.image_generator == "gemini"
    assert settings.token_ttl_minutes == 60
    assert settings.provider_options("gemini")["api_key"] == "k-123"


def test_keyword_overrides_beat_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCWIZ_PORT", "9100")

    assert load_settings(port=9200).port == 9200


def test_docwiz_config_names_another_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_toml(tmp_path / "site.toml", 'storage_backend = "s3"\n')
    monkeypatch.setenv("DOCWIZ_CONFIG", str(config))

    assert load_settings().storage_backend == "s3"


def test_missing_config_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCWIZ_CONFIG", "/nonexistent/docwiz.toml")

    with pytest.raises(ConfigError, match="not a file"):
        load_settings()


def test_comma_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCWIZ_PLUGINS_BLOCK", "gemini, s3")
    monkeypatch.setenv("DOCWIZ_TRUSTED_PROXIES", "10.0.0.1")

    settings = load_settings()

    assert settings.plugins_block == ["gemini", "s3"]
    assert settings.trusted_proxies == ["10.0.0.1"]


def test_bad_values_are_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCWIZ_PORT", "eighty")
    monkeypatch.setenv("DOCWIZ_MODE", "cluster")

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert "port:" in str(caught.value)
    assert "mode:" in str(caught.value)


def test_unknown_setting_in_toml_is_refused(tmp_path: Path) -> None:
    write_toml(tmp_path / "docwiz.toml", "prot = 80\n")

    with pytest.raises(ConfigError, match="prot"):
        load_settings()


def test_scale_out_refuses_to_start_without_servers_and_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCWIZ_MODE", "scale-out")
    monkeypatch.setenv("DOCWIZ_DATABASE_URL", "postgresql://db/docwiz")

    with pytest.raises(ConfigError) as caught:
        load_settings()

    message = str(caught.value)
    assert "DOCWIZ_REDIS_URL" in message
    assert "DOCWIZ_JWT_SECRET" in message
    assert "DOCWIZ_ENCRYPTION_KEYS" in message
    assert "DOCWIZ_DATABASE_URL" not in message


def test_postgres_urls_use_asyncpg() -> None:
    settings = Settings(database_url="postgresql://u@db:5432/docwiz")

    assert settings.resolved_database_url == "postgresql+asyncpg://u@db:5432/docwiz"


def test_embedded_secrets_are_generated_once_with_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")

    first = resolve_secrets(settings)
    second = resolve_secrets(settings)

    assert first == second
    assert len(first.jwt_secret) >= 32
    for name in ("jwt_secret", "field_key"):
        mode = stat.S_IMODE((tmp_path / "var" / "secrets" / name).stat().st_mode)
        assert mode == 0o600


def test_secret_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    resolve_secrets(settings)
    (tmp_path / "secrets" / "jwt_secret").chmod(0o644)

    with pytest.raises(ConfigError, match="chmod 600"):
        resolve_secrets(settings)


def test_scale_out_secrets_come_from_the_environment(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    keys = f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}"
    settings = Settings(
        data_dir=tmp_path,
        mode="scale-out",
        database_url="postgresql://db/docwiz",
        redis_url="redis://cache:6379/0",
        jwt_secret="s" * 40,
        encryption_keys=keys,
    )

    secrets = resolve_secrets(settings)

    assert secrets.jwt_secret == b"s" * 40
    assert len(secrets.encryption_keys) == 2
    assert not (tmp_path / "secrets").exists()


def test_short_jwt_secret_and_bad_key_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        resolve_secrets(Settings(data_dir=tmp_path, jwt_secret="short"))
    with pytest.raises(ConfigError, match="Fernet key"):
        resolve_secrets(
            Settings(data_dir=tmp_path, jwt_secret="s" * 40, encryption_keys="nope")
        )


async def test_new_data_folder_and_database_are_private(tmp_path: Path) -> None:
    from docwiz.db.session import Database

    settings = Settings(data_dir=tmp_path / "fresh")
    resolve_secrets(settings)
    database = Database(settings.resolved_database_url)
    await database.ping()
    await database.dispose()

    assert stat.S_IMODE((tmp_path / "fresh").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "fresh" / "docwiz.db").stat().st_mode) == 0o600


def test_seed_data_folder_is_a_setting(tmp_path: Path) -> None:
    import shutil

    from docwiz.app import create_app
    from docwiz.appkeys import CATALOG

    default = Settings(data_dir=tmp_path / "var").seeds_dir
    assert (default / "procedures.json").is_file()
    mine = tmp_path / "seeds"
    mine.mkdir()
    shutil.copy(default / "procedures.json", mine / "procedures.json")

    app = create_app(Settings(data_dir=tmp_path / "var", seeds_dir=mine))
    assert app[CATALOG].path == mine / "procedures.json"

    (mine / "procedures.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"procedures\.json"):
        create_app(Settings(data_dir=tmp_path / "var", seeds_dir=mine))
