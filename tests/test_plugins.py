"""Plugin loading: entry points, built-ins, allow/block lists, clear failures."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from docwiz import hookspecs
from docwiz.app import create_app
from docwiz.appkeys import PROVIDERS
from docwiz.builtin import DEFAULT_PLUGINS
from docwiz.config import Settings
from docwiz.facade import FAMILY_HOOKS, Providers, offered_providers
from docwiz.plugins import PluginError, load_plugins, pm_records


def fake(name: str, module: str) -> EntryPoint:
    return EntryPoint(name, f"tests.fake_plugins.{module}", "docwiz")


def test_builtins_register_like_third_party_plugins() -> None:
    pm = load_plugins(entry_points=[])

    records = pm_records(pm)
    assert set(DEFAULT_PLUGINS) <= set(records)
    assert all(records[name].source == "built-in" for name in DEFAULT_PLUGINS)
    offered = {(p.family, p.name) for p in offered_providers(pm)}
    assert {
        ("storage", "local"),
        ("image_generator", "offline"),
        ("text_generator", "template"),
    } <= offered


def test_entry_point_plugin_is_loaded_and_selectable(tmp_path: Path) -> None:
    pm = load_plugins(entry_points=[fake("memory", "good")])
    settings = Settings(data_dir=tmp_path, storage_backend="memory")

    providers = Providers(pm, settings, secret_key=b"k" * 32)

    assert type(providers.storage).__name__ == "MemoryStorage"
    assert pm_records(pm)["memory"].source == "entry point tests.fake_plugins.good"


def test_plugin_that_fails_to_import_names_itself() -> None:
    with pytest.raises(PluginError) as caught:
        load_plugins(entry_points=[fake("vendor", "broken_import")])

    message = str(caught.value)
    assert "'vendor'" in message
    assert "failed to import" in message
    assert "docwiz_vendor_sdk_that_is_not_installed" in message


def test_unknown_hook_is_refused() -> None:
    with pytest.raises(PluginError, match=r"'typo'.*docwiz_storage_backend"):
        load_plugins(entry_points=[fake("typo", "unknown_hook")])


def test_hook_with_wrong_arguments_is_refused() -> None:
    with pytest.raises(PluginError, match=r"(?s)'wrongargs' is invalid.*region"):
        load_plugins(entry_points=[fake("wrongargs", "bad_signature")])


def test_two_providers_with_one_name_are_refused() -> None:
    pm = load_plugins(entry_points=[fake("clash", "clashing")])

    with pytest.raises(PluginError, match=r"'clash'.*both offer.*'local'"):
        offered_providers(pm)


def test_registration_hook_must_return_providers() -> None:
    pm = load_plugins(entry_points=[fake("strings", "wrong_return")])

    with pytest.raises(PluginError, match=r"'strings'.*sequence of Provider"):
        offered_providers(pm)


def test_block_list_skips_a_plugin() -> None:
    pm = load_plugins(
        entry_points=[fake("vendor", "broken_import"), fake("memory", "good")],
        block=["vendor"],
    )
    assert "vendor" not in pm_records(pm)
    assert "memory" in pm_records(pm)


def test_allow_list_loads_only_named_plugins() -> None:
    pm = load_plugins(
        entry_points=[fake("vendor", "broken_import"), fake("memory", "good")],
        allow=["memory"],
    )
    assert "memory" in pm_records(pm)
    assert "vendor" not in pm_records(pm)


def test_unknown_active_provider_stops_the_start(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, image_generator="dall-e")

    with pytest.raises(PluginError) as caught:
        create_app(settings, plugin_manager=load_plugins(entry_points=[]))

    assert "no image_generator provider named 'dall-e'" in str(caught.value)
    assert "available: offline" in str(caught.value)


def test_broken_plugin_stops_create_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "docwiz.plugins.discover_entry_points",
        lambda: [fake("vendor", "broken_import")],
    )
    with pytest.raises(PluginError, match="'vendor'"):
        create_app(Settings(data_dir=tmp_path))


def test_provider_options_reach_the_factory(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        storage_backend="memory",
        plugins={"Memory": {"bucket": "photos"}},
    )
    app = create_app(
        settings, plugin_manager=load_plugins(entry_points=[fake("memory", "good")])
    )

    storage = app[PROVIDERS].storage
    assert storage.context.options == {"bucket": "photos"}  # type: ignore[attr-defined]
    assert storage.context.mode == "embedded"  # type: ignore[attr-defined]


def test_every_hook_has_a_family_and_documentation() -> None:
    declared = {
        name
        for name in dir(hookspecs)
        if name.startswith("docwiz_") and callable(getattr(hookspecs, name))
    }
    assert declared == set(FAMILY_HOOKS.values())
    for name in declared:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert "Called" in doc and "collected" in doc, (
            f"{name} must say when it is called"
        )


def test_every_hook_is_exercised_by_a_test_outside_this_file() -> None:
    root = Path(__file__).parent.parent
    test_files = [
        path
        for folder in ("tests", "plugins", "examples")
        for path in (root / folder).rglob("test_*.py")
        if path.name != Path(__file__).name
    ]
    texts = [path.read_text() for path in test_files]
    for hook in FAMILY_HOOKS.values():
        assert any(hook in text for text in texts), f"no test exercises {hook}"
