"""Recipe tests: real recipes, real training, the real `local` device, real SQLite."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from support.fixtures import sshd_fleet  # noqa: F401  (real sshd "boards" for device tests)


@pytest.fixture(autouse=True)
def isolated_host_state(tmp_path, monkeypatch):
    """Keep every test's inventory, local spool and results DB inside tmp_path."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("EDGEPRUNE_INVENTORY", raising=False)
    monkeypatch.delenv("EDGEPRUNE_RESULTS_DB", raising=False)


@pytest.fixture
def write_recipe(tmp_path: Path):
    """write_recipe(text, name='recipe.yaml') -> Path (text is dedented)."""

    def write(text: str, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write
