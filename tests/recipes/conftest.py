"""Recipe tests: real recipes, real training, the real `local` device, real SQLite."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from support.fixtures import (  # noqa: F401  (real sshd "boards" for device tests)
    isolated_host_state,
    sshd_fleet,
)


@pytest.fixture
def write_recipe(tmp_path: Path):
    """write_recipe(text, name='recipe.yaml') -> Path (text is dedented)."""

    def write(text: str, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write
