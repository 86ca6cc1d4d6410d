"""Library errors name Python parameters; the CLI shows the same message with flags."""

from __future__ import annotations

import pickle

import pytest

from edgeprune.errors import DeviceError, UserError


def test_params_become_flags_only_on_the_cli():
    error = UserError(
        "max_layer_sparsity 2 must be in (0, 1]; or give ratio",
        params=("max_layer_sparsity", "ratio"),
    )
    assert str(error) == "max_layer_sparsity 2 must be in (0, 1]; or give ratio"
    assert error.in_flags() == "--max-layer-sparsity 2 must be in (0, 1]; or give --ratio"


def test_only_whole_names_change_and_unlisted_words_stay():
    error = UserError("runs 0 is below 1; runtime and run_id stay", params=("runs", "run"))
    assert error.in_flags() == "--runs 0 is below 1; runtime and run_id stay"


def test_backticks_mark_the_name_where_it_is_also_a_word():
    error = UserError(
        "quantize int8 needs calibration data; give `data` (digits)", params=("quantize", "data")
    )
    assert error.in_flags() == "--quantize int8 needs calibration data; give --data (digits)"


def test_a_flag_spelled_otherwise_is_mapped():
    error = UserError("output 'x' is a directory", params=("output",))
    assert error.in_flags({"output": "-o"}) == "-o 'x' is a directory"


def test_no_params_no_change_and_params_survive_pickling():
    assert DeviceError("sparsity of the board").in_flags() == "sparsity of the board"
    error = pickle.loads(pickle.dumps(UserError("ratio 2 is outside", params=("ratio",))))
    assert error.params == ("ratio",) and error.in_flags() == "--ratio 2 is outside"


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (
            ["channels", "m.keras", "-o", "o.keras", "--ratio", "0.5", "--threshold", "0.2"],
            "--ratio",
        ),
        (["convert", "m.keras", "-o", "o.tflite", "--quantize", "int4"], "--quantize"),
    ],
)
def test_the_cli_prints_flags(run_cli, tmp_path, argv, flag):
    (tmp_path / "m.keras").write_bytes(b"not read: options are checked first")
    argv = [str(tmp_path / a) if a.endswith((".keras", ".tflite")) else a for a in argv]
    outcome = run_cli(*argv)
    assert outcome.code == 2
    assert outcome.err.startswith("error: ") and flag in outcome.err, outcome.err
