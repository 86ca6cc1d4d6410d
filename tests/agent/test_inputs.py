"""Benchmark inputs: seeded random tensors, shipped .npy/.npz matched to the model, and every
way a shipped file can fail to fit."""

from __future__ import annotations

import numpy as np
import pytest

from device_agents.inputs import (
    InputsError,
    OutputRecorder,
    load_samples,
    random_array,
    random_sample,
)

IMAGE = {
    "name": "serving_default_image:0",
    "index": 0,
    "shape": np.array([1, 32, 32, 3]),
    "dtype": np.float32,
}
A = {"name": "serving_default_a:0", "index": 0, "shape": np.array([1, 8]), "dtype": np.float32}
B = {"name": "serving_default_b:0", "index": 1, "shape": np.array([1, 4]), "dtype": np.float32}


def test_random_inputs_are_fixed_per_seed_dtype_and_shape():
    first = random_sample([IMAGE], seed=7)[0]
    assert first.shape == (1, 32, 32, 3) and first.dtype == np.float32
    assert np.array_equal(first, random_sample([IMAGE], seed=7)[0])
    assert not np.array_equal(first, random_sample([IMAGE], seed=8)[0])
    assert first.min() >= -1.0 and first.max() < 1.0
    # a stream per dtype/shape: adding another input does not change this one's values
    assert np.array_equal(random_sample([IMAGE, A], seed=7)[0], first)
    int8 = random_array(0, np.int8, (4096,))
    assert int8.dtype == np.int8 and int8.min() < -100 and int8.max() > 100
    assert random_array(0, np.int32, (100,)).max() < 10
    assert random_array(0, np.bool_, (100,)).dtype == np.bool_
    with pytest.raises(InputsError, match="complex64"):
        random_array(0, np.complex64, (2,))


def test_npy_samples_fit_the_input(tmp_path):
    stack = np.random.default_rng(0).random((5, 32, 32, 3), dtype=np.float32)
    path = tmp_path / "x.npy"
    np.save(path, stack)
    samples = load_samples(str(path), [IMAGE])
    assert len(samples) == 5 and samples[2][0].shape == (1, 32, 32, 3)
    assert np.array_equal(samples[2][0][0], stack[2])
    np.save(path, stack[:1])
    assert len(load_samples(str(path), [IMAGE])) == 1
    np.save(path, stack[0])  # one sample without its batch axis
    assert load_samples(str(path), [IMAGE])[0][0].shape == (1, 32, 32, 3)


def test_npz_by_x_by_name_and_by_position(tmp_path):
    x = np.zeros((3, 32, 32, 3), np.float32)
    path = tmp_path / "set.npz"
    np.savez(path, x=x, y=np.arange(3))
    assert len(load_samples(str(path), [IMAGE])) == 3
    np.savez(
        path,
        **{
            "serving_default_a:0": np.ones((2, 8), np.float32),
            "input_1": np.ones((2, 4), np.float32),
        },
    )
    two = load_samples(str(path), [A, B])
    assert len(two) == 2 and two[0][0].shape == (1, 8) and two[0][1].shape == (1, 4)
    np.savez(path, np.ones((4, 8), np.float32), np.ones((4, 4), np.float32))  # arr_0, arr_1
    assert len(load_samples(str(path), [A, B])) == 4


@pytest.mark.parametrize(
    ("make", "details", "message"),
    [
        (
            lambda p: np.save(p, np.zeros((2, 28, 28, 1), np.float32)),
            [IMAGE],
            r"shape \(2, 28, 28, 1\) but model input 'serving_default_image:0' takes \(1, 32, 32, 3\)",
        ),
        (
            lambda p: np.save(p, np.zeros((2, 32, 32, 3))),
            [IMAGE],
            r"dtype float64 but model input .* takes float32",
        ),
        (lambda p: np.save(p, np.zeros((0, 32, 32, 3), np.float32)), [IMAGE], "shape"),
        (lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), [IMAGE], "pickled"),
        (lambda p: p.write_bytes(b"\x93NUMPY garbage"), [IMAGE], "not a readable"),
        (lambda p: p.write_bytes(b"just text"), [IMAGE], "neither a .npy nor a .npz"),
        (
            lambda p: np.save(p, np.zeros((1, 8), np.float32)),
            [A, B],
            "one array but the model has 2 inputs",
        ),
        (lambda p: np.save(p, np.array(["a", "b"])), [IMAGE], "not a numeric array"),
    ],
)
def test_npy_that_does_not_fit_is_named(tmp_path, make, details, message):
    path = tmp_path / "bad.npy"
    make(path)
    with pytest.raises(InputsError, match=message):
        load_samples(str(path), details)


def test_npz_that_does_not_fit_is_named(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, images=np.zeros((1, 32, 32, 3), np.float32), labels=np.zeros(1))
    with pytest.raises(InputsError, match="name the model's input 'x'"):
        load_samples(str(path), [IMAGE])
    np.savez(path, **{"serving_default_a:0": np.zeros((1, 8), np.float32)})
    with pytest.raises(InputsError, match="no array for model input 1"):
        load_samples(str(path), [A, B])
    np.savez(path, arr_0=np.zeros((2, 8), np.float32), arr_1=np.zeros((3, 4), np.float32))
    with pytest.raises(InputsError, match="disagree on the number of samples"):
        load_samples(str(path), [A, B])
    np.savez(path, x=np.array([object()], dtype=object))
    with pytest.raises(InputsError, match="pickled"):
        load_samples(str(path), [IMAGE])
    np.savez(path)
    with pytest.raises(InputsError, match="no arrays"):
        load_samples(str(path), [IMAGE])
    with pytest.raises(InputsError, match="does not exist"):
        load_samples(str(path) + ".missing", [IMAGE])


def test_output_recorder_digest_and_top1():
    first = OutputRecorder("inputs")
    second = OutputRecorder("inputs")
    outputs = [np.array([[0.1, 0.7, 0.2]], np.float32), np.array([[5]], np.int32)]
    for recorder in (first, second):
        recorder.add(outputs)
        recorder.add([np.array([[0.9, 0.05, 0.05]], np.float32), np.array([[6]], np.int32)])
    assert first.to_dict() == second.to_dict()
    assert first.to_dict()["top1"] == [1, 0] and first.to_dict()["samples"] == 2
    other = OutputRecorder("inputs")
    other.add([np.array([[0.1, 0.7, 0.2]], np.float32), np.array([[5]], np.int32)])
    other.add([np.array([[0.9, 0.05, 0.06]], np.float32), np.array([[6]], np.int32)])
    assert other.to_dict()["digest"] != first.to_dict()["digest"]
