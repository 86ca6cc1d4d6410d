"""`OUT.adapt/`: every finished iteration on disk, so Ctrl-C keeps them and a re-run resumes.

`trajectory.json` holds the run's identity (source model and the options that shape the
iterations), the baseline and one record per finished iteration; each iteration's model is
`iter-NN/model.keras`. Every file is written under a temporary name and renamed into place,
and an iteration counts only once its record is in `trajectory.json`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgeprune.errors import UserError

TRAJECTORY = "trajectory.json"
SCHEMA = 1


def workdir_for(output: Path) -> Path:
    """`model.keras` -> `model.adapt/` beside it."""
    return output.with_name(output.stem + ".adapt")


def write_json(path: Path, document: Any) -> None:
    """Write `document` to `path` atomically (temporary file in the same folder, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


class Workdir:
    """The run's folder; `state` is the trajectory document (identity, baseline, iterations)."""

    def __init__(self, root: Path, identity: dict[str, Any]) -> None:
        self.root = root
        self.identity = identity
        self.state: dict[str, Any] = {
            "schema": SCHEMA,
            "identity": identity,
            "baseline": None,
            "iterations": [],
        }

    @classmethod
    def open(cls, root: Path, identity: dict[str, Any]) -> Workdir:
        """The folder's finished iterations when it holds this same run; a fresh one if absent."""
        workdir = cls(root, identity)
        path = root / TRAJECTORY
        if root.exists() and not root.is_dir():
            raise UserError(f"{root} is a file, but adapt keeps its iterations there; move it")
        if path.exists():
            try:
                state = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise UserError(
                    f"{path} cannot be read ({exc}); remove {root} to start over"
                ) from None
            if state.get("identity") != identity:
                raise UserError(
                    f"{root} holds an adapt run of another model or other options; remove it "
                    "to start over, or choose another output"
                )
            workdir.state = state
        return workdir

    @property
    def iterations(self) -> list[dict[str, Any]]:
        return list(self.state["iterations"])

    def iteration_dir(self, index: int) -> Path:
        return self.root / f"iter-{index:02d}"

    def scratch(self, index: int) -> Path:
        """A fresh folder for an iteration's proposals (what an interrupted one left is dropped)."""
        path = self.iteration_dir(index) / "proposals"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def set_baseline(self, baseline: dict[str, Any]) -> None:
        self.state["baseline"] = baseline
        self.save()

    def add_iteration(self, record: dict[str, Any]) -> None:
        """Keep one finished iteration: its record lands last, after its files."""
        write_json(self.iteration_dir(record["iteration"]) / "iteration.json", record)
        self.state["iterations"].append(record)
        self.save()

    def save(self) -> None:
        write_json(self.root / TRAJECTORY, self.state)
