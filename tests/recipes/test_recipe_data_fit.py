"""A recipe whose data cannot feed its model fails at planning (`--dry-run`), in one line.

Models are real `.keras` files (or a keras.applications name); data are real .npz files,
image folders or the bundled digits. Nothing is trained: the check must come first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def keras_file(
    path: Path,
    shape: tuple[int, ...],
    units: int,
    *,
    dtype: str = "float32",
    sequential: bool = False,
) -> Path:
    import keras

    if sequential:
        model = keras.Sequential(
            [
                keras.Input(shape, dtype=dtype),
                keras.layers.Flatten(),
                keras.layers.Dense(units, activation="softmax"),
            ]
        )
    else:
        inputs = keras.Input(shape, dtype=dtype)
        x = keras.layers.Conv2D(4, 3, strides=2)(inputs)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(units)(x)
        x = keras.layers.Dropout(0.1)(x)
        model = keras.Model(inputs, keras.layers.Activation("softmax")(x))
    model.save(path)
    return path


def recipe_text(model: str, data: str) -> str:
    return f"""
name: fit
model: {model}
data: {data}
steps:
  prune: {{method: oneshot, sparsity: 0.5}}
devices: [local]
"""


def dry_run(run_cli, recipe: Path, tmp_path: Path):
    return run_cli("run", recipe, "--dry-run", "--workdir", tmp_path / "work")


def one_line_error(outcome, recipe: Path) -> str:
    assert outcome.code == 2, outcome
    lines = outcome.err.strip().splitlines()
    assert len(lines) == 1, outcome.err
    assert f"{recipe}:3" in lines[0]  # the `data:` key's line
    return lines[0]


def test_npz_of_another_image_size_fails_at_dry_run(run_cli, write_recipe, tmp_path):
    keras_file(tmp_path / "m.keras", (48, 48, 1), 10)
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "big.npz",
        x=rng.random((20, 176, 176, 1), dtype=np.float32),
        y=np.arange(20) % 10,
    )
    recipe = write_recipe(recipe_text("{file: m.keras, train: {epochs: 1}}", "big.npz"))
    line = one_line_error(dry_run(run_cli, recipe, tmp_path), recipe)
    assert "(176, 176, 1)" in line and "(48, 48, 1)" in line, line
    assert not (tmp_path / "work" / "stages").exists()  # nothing built


def test_more_classes_than_outputs_fails(run_cli, write_recipe, tmp_path):
    keras_file(tmp_path / "m.keras", (8, 8, 1), 3)
    recipe = write_recipe(recipe_text("{file: m.keras}", "digits"))
    line = one_line_error(dry_run(run_cli, recipe, tmp_path), recipe)
    assert "10 classes" in line and "outputs 3" in line, line


def test_sequential_model_classes_are_read(run_cli, write_recipe, tmp_path):
    keras_file(tmp_path / "m.keras", (8, 8, 1), 4, sequential=True)
    recipe = write_recipe(recipe_text("{file: m.keras}", "digits"))
    line = one_line_error(dry_run(run_cli, recipe, tmp_path), recipe)
    assert "outputs 4" in line, line


def test_integer_input_model_fails(run_cli, write_recipe, tmp_path):
    keras_file(tmp_path / "m.keras", (8, 8, 1), 10, dtype="int32", sequential=True)
    recipe = write_recipe(recipe_text("{file: m.keras}", "digits"))
    line = one_line_error(dry_run(run_cli, recipe, tmp_path), recipe)
    assert "int32 inputs" in line, line


def test_application_input_shape_against_data(run_cli, write_recipe, tmp_path):
    recipe = write_recipe(
        recipe_text("{application: MobileNetV2, input_shape: [32, 32, 3], classes: 10}", "digits")
    )
    line = one_line_error(dry_run(run_cli, recipe, tmp_path), recipe)
    assert "(8, 8, 1)" in line and "(32, 32, 3)" in line, line


def image_folder(root: Path, classes: int) -> Path:
    from PIL import Image

    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (40, 30), (c * 40, i * 90, 0)).save(root / f"c{c}" / f"{i}.png")
    return root


def test_image_size_is_applied_before_comparing(run_cli, write_recipe, tmp_path):
    keras_file(tmp_path / "m.keras", (32, 32, 3), 2)
    image_folder(tmp_path / "imgs", 2)
    recipe = write_recipe(recipe_text("{file: m.keras}", "{train: imgs, image_size: [20, 20]}"))
    line = one_line_error(dry_run(run_cli, recipe, tmp_path), recipe)
    assert "(20, 20, 3)" in line and "(32, 32, 3)" in line, line

    # without image_size the folder is resized to the model's input: it fits
    recipe = write_recipe(recipe_text("{file: m.keras}", "{train: imgs}"))
    outcome = dry_run(run_cli, recipe, tmp_path)
    assert outcome.code == 0, outcome.err


@pytest.mark.parametrize("sequential", [False, True])
def test_data_that_fits_plans(run_cli, write_recipe, tmp_path, sequential):
    keras_file(tmp_path / "m.keras", (8, 8, 1), 10, sequential=sequential)
    recipe = write_recipe(recipe_text("{file: m.keras}", "digits"))
    outcome = dry_run(run_cli, recipe, tmp_path)
    assert outcome.code == 0, outcome.err
