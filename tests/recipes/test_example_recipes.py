"""The shipped example recipe for keras.applications MobileNetV2 on a Pi and a Jetson: planned
against a real inventory (no board is contacted by --dry-run), and its data line named
when the images are missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "configs/recipes/mobilenetv2-pi-jetson.yaml"


def test_example_plans_every_variant_on_the_tagged_boards(run_cli, tmp_path: Path):
    from PIL import Image

    recipe = tmp_path / EXAMPLE.name
    shutil.copy(EXAMPLE, recipe)
    rng = np.random.default_rng(0)
    for label in ("daisy", "tulip"):
        folder = tmp_path / "data" / "flowers" / label
        folder.mkdir(parents=True)
        for i in range(2):
            pixels = rng.integers(0, 255, size=(20, 20, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    inventory = tmp_path / "devices.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "devices": [
                    {"name": "pi4-lab", "host": "10.0.0.4", "kind": "raspberry_pi", "tags": ["pi"]},
                    {
                        "name": "pi5-desk",
                        "host": "10.0.0.5",
                        "kind": "raspberry_pi",
                        "tags": ["pi"],
                    },
                    {"name": "nano", "host": "10.0.0.9", "kind": "jetson", "tags": ["jetson"]},
                ]
            }
        )
    )
    outcome = run_cli(
        "run", recipe, "--dry-run", "--json", "--inventory", inventory, "--workdir", tmp_path / "w"
    )
    assert outcome.code == 0, outcome.err
    plan = json.loads(outcome.out)
    assert plan["devices"] == ["pi4-lab", "pi5-desk", "nano"]
    assert len(plan["variants"]) == 9
    assert plan["stages_cached"] == 0
    # one base, two prunes, two channel removals and their fine-tunes, nine conversions,
    # and nine measurements on each of the three boards
    assert plan["stages_total"] == 1 + 2 + 2 + 2 + 9 + 9 * 3
    assert plan["bench_options"]["threads"] == [1, 4]
    assert not (tmp_path / "w").exists()  # a dry run writes nothing


def test_example_in_place_names_the_missing_images_by_line(run_cli):
    outcome = run_cli("run", EXAMPLE, "--dry-run", "--device", "local")
    assert outcome.code == 2
    line = next(
        i for i, text in enumerate(EXAMPLE.read_text().splitlines(), 1) if "train: data/" in text
    )
    assert outcome.err.startswith(f"error: {EXAMPLE}:{line}: data.train: dataset ")
    assert "does not exist" in outcome.err


def test_unknown_devices_are_named(run_cli, write_recipe):
    recipe = write_recipe(
        """
        model: {demo: true}
        data: digits
        steps: {}
        devices: [local, pi9]
        """
    )
    outcome = run_cli("run", recipe, "--dry-run")
    assert outcome.code == 2
    assert outcome.err.startswith(f"error: {recipe}:4: devices[1]: no device or tag 'pi9'")
    outcome = run_cli("run", recipe, "--dry-run", "--devices", "local,jetson")
    assert outcome.code == 2 and "--devices: no device or tag 'jetson'" in outcome.err
