"""Datasets of any task from real files: .npz with any y, several outputs, x only, image folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeprune.data import load_dataset
from edgeprune.errors import UserError


def _save(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_class_ids_and_one_hot_stay_ids_with_a_stratified_split(tmp_path):
    y = np.repeat(np.arange(4), 10)
    data = load_dataset(_save(tmp_path / "c.npz", x=np.zeros((40, 3)), y=np.eye(4)[y]))
    assert data.y_train.dtype == np.int64 and data.y_train.ndim == 1
    assert data.num_classes == 4
    assert sorted(np.bincount(data.y_val).tolist()) == [2, 2, 2, 2]  # stratified


def test_float_targets_keep_their_shape_and_split_at_random(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 3)), rng.normal(size=(50, 2))
    data = load_dataset(_save(tmp_path / "r.npz", x=x, y=y))
    assert data.y_val.dtype == np.float32 and data.y_val.shape == (10, 2)
    assert data.num_classes == 0 and data.class_names == []
    # the pairs stay together, and the split is the same every time
    index = [int(np.flatnonzero(np.all(np.isclose(x, row), axis=1))[0]) for row in data.x_val]
    assert np.allclose(data.y_val, y[index])
    again = load_dataset(tmp_path / "r.npz")
    assert np.array_equal(again.x_val, data.x_val)


def test_masks_are_integer_maps_with_classes(tmp_path):
    masks = np.zeros((10, 4, 4), np.float64)
    masks[:, 0, 0] = 2
    data = load_dataset(_save(tmp_path / "m.npz", x=np.zeros((10, 4, 4, 1)), y=masks))
    assert data.y_val.dtype == np.int64 and data.y_val.shape == (2, 4, 4)
    assert data.num_classes == 3


def test_several_outputs_as_y_name_and_explicit_validation(tmp_path):
    rng = np.random.default_rng(1)
    path = _save(
        tmp_path / "two.npz",
        x=rng.normal(size=(8, 3)),
        y_speed=rng.normal(size=(8, 2)),
        y_angle=rng.normal(size=(8, 1)),
        x_val=rng.normal(size=(4, 3)),
        y_val_speed=rng.normal(size=(4, 2)),
        y_val_angle=rng.normal(size=(4, 1)),
    )
    data = load_dataset(path)
    assert set(data.y_train) == {"speed", "angle"} and set(data.y_val) == {"speed", "angle"}
    assert data.y_val["speed"].shape == (4, 2) and len(data.x_train) == 8
    assert data.num_classes == 0
    bad = _save(
        tmp_path / "bad.npz",
        x=np.zeros((8, 3)),
        y_speed=np.zeros((8, 2)),
        x_val=np.zeros((4, 3)),
        y_val_angle=np.zeros((4, 1)),
    )
    with pytest.raises(UserError, match="outputs speed but y_val for angle"):
        load_dataset(bad)


def test_x_only_npz_and_plain_image_folder(tmp_path):
    data = load_dataset(_save(tmp_path / "x.npz", x=np.ones((20, 5))))
    assert data.y_train is None and data.y_val is None and not data.has_labels
    assert len(data.x_train) == 16 and len(data.x_val) == 4 and data.num_classes == 0
    assert data.calibration(10).shape == (10, 5)

    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(np.full((6, 7, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    images = load_dataset(folder, image_size=(4, 4))
    assert images.x_train.shape[1:] == (4, 4, 3) and images.y_val is None
    assert len(images.x_train) + len(images.x_val) == 5
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no class sub-folders .* and no images"):
        load_dataset(empty)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((4, 3)), "y": np.zeros(5)}, "x has 4 samples but y has 5"),
        ({"images": np.zeros((4, 3))}, "must hold arrays 'x' and 'y'"),
        ({"x": np.zeros((4, 3)), "y": np.array(["a", "b", "c", "d"])}, "y must be numeric"),
        ({"x": np.zeros((4, 3)), "y": np.array([0.5, np.nan, 1, 2])}, "NaN or infinite"),
        (
            {"x": np.zeros((4, 3)), "y": np.zeros(4), "y_a": np.zeros(4)},
            "holds both 'y' and y_a",
        ),
        (
            {"x": np.zeros((4, 3)), "y": np.zeros(4), "x_val": np.zeros((2, 3))},
            "both 'x_val' and 'y_val', or neither",
        ),
        ({"x": np.zeros((4, 3)), "y_val": np.zeros(2)}, "both 'x_val' and 'y_val'"),
    ],
)
def test_mismatches_are_one_line(tmp_path, arrays, message):
    path = _save(tmp_path / "d.npz", **arrays)
    with pytest.raises(UserError, match=message) as err:
        load_dataset(path)
    assert "\n" not in str(err.value)


def test_int8_convert_calibrates_from_a_plain_image_folder(tmp_path, run_cli):
    from PIL import Image

    from edgeprune import _tf
    from edgeprune.tflite import TFLiteRunner

    keras = _tf.keras()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    hidden = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(hidden)))
    model.save(tmp_path / "m.keras")
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):  # 16x12 camera frames, resized to the model's 8x8 input
        Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    out = tmp_path / "m-int8.tflite"
    outcome = run_cli(
        "convert",
        tmp_path / "m.keras",
        "-o",
        out,
        "--quantize",
        "int8",
        "--io",
        "int8",
        "--data",
        folder,
    )
    assert outcome.code == 0, outcome.err
    runner = TFLiteRunner(out)
    assert runner.inputs[0].quantized  # int8 all through, calibrated from the frames alone
    frames = load_dataset(folder, image_size=(8, 8)).x_val
    assert np.abs(runner.predict(frames) - model.predict(frames, verbose=0)).max() < 0.1


def test_whole_valued_targets_with_many_values_split_at_random_without_class_names(tmp_path):
    x = np.zeros((30, 2))
    ages = np.arange(30) * 3.0  # 30 distinct whole values: targets, not 30 one-sample classes
    data = load_dataset(_save(tmp_path / "ages.npz", x=x, y=ages))
    assert len(data.x_val) == 6  # stratified, every one-sample class would stay in training
    prices = np.arange(30) * 1e6  # ids this large would be millions of class names
    big = load_dataset(_save(tmp_path / "prices.npz", x=x, y=prices))
    assert big.num_classes == 0 and len(big.x_val) == 6
