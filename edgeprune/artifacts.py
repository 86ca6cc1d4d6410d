"""One way to write a model and its manifest: both, or neither.

Every step that makes a model (prune, channels, xnnpack-fix, convert, a recipe's stages)
writes it under a temporary name beside the target, describes that file in a manifest,
writes the manifest under a temporary name too, and only then renames both into place. A
failure (or Ctrl-C) at any point removes what this write made, so no model is ever left
without its manifest and no manifest describes a file that is not there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeprune.manifest import Manifest, build_manifest, manifest_path


@dataclass
class Artifact:
    """The file being written (`path`, a temporary name) and its final place (`target`).

    Write the model to `path`, then set `manifest` (`describe` builds one from `path`).
    """

    target: Path
    path: Path
    manifest: Manifest | None = None

    def describe(self, **fields: Any) -> Manifest:
        """`build_manifest` for the file at `path`, named as `target`; kept as `manifest`."""
        self.manifest = build_manifest(self.path, **fields)
        self.manifest.file = self.target.name
        return self.manifest

    @property
    def manifest_path(self) -> Path:
        return manifest_path(self.target)


@contextlib.contextmanager
def artifact(target: str | os.PathLike[str]) -> Iterator[Artifact]:
    """`with artifact(out) as art:` write `art.path`, call `art.describe(...)`; both land on exit.

    The temporary names keep the final suffix, because Keras and TFLite writers look at it.
    """
    final = Path(target)
    model_tmp = _temp_name(final)
    manifest_tmp = _temp_name(manifest_path(final))
    art = Artifact(final, model_tmp)
    placed = False
    try:
        yield art
        if not (model_tmp.exists() or model_tmp.is_symlink()):
            raise RuntimeError(f"nothing was written to {model_tmp}")
        if art.manifest is None:
            raise RuntimeError(f"no manifest was described for {final}")
        text = json.dumps(art.manifest.to_dict(), indent=2, sort_keys=True) + "\n"
        manifest_tmp.write_text(text, encoding="utf-8")
        os.chmod(manifest_tmp, 0o644)
        os.replace(model_tmp, final)
        placed = True
        os.replace(manifest_tmp, art.manifest_path)
    except BaseException:
        if placed:  # the model moved in but its manifest did not: take the model back out
            _remove(final)
        raise
    finally:
        _remove(model_tmp)
        _remove(manifest_tmp)


def save_keras_artifact(model: Any, target: str | os.PathLike[str], **manifest: Any) -> Path:
    """Save `model` as `target` (.keras/.h5) with its manifest (`build_manifest` fields)."""
    from edgeprune.models import save_keras_model

    with artifact(target) as art:
        save_keras_model(model, art.path)
        art.describe(**manifest)
    return art.manifest_path


def _temp_name(path: Path) -> Path:
    fd, name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".part{''.join(path.suffixes[-1:])}", dir=path.parent
    )
    os.close(fd)
    os.unlink(name)
    return Path(name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
