"""Every CLI table at 80 and 60 columns and through a pipe, with real commands on a real
results store, inventory, local device and model: no line is wider than the console, and
no name is broken across lines (it is whole, or shortened in the middle with "…")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeprune.cli.common import console, err_console
from edgeprune.text import shorten_middle

from .store_fill import DEVICES, MODELS, fill

REPO = Path(__file__).resolve().parents[2]
MODEL_NAMES = [m[0] for m in MODELS]
WIDTHS = (80, 60)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = Path(tmp_path_factory.mktemp("widths")) / "r.db"
    fill(path)
    return str(path)


@pytest.fixture
def at_width(monkeypatch: pytest.MonkeyPatch):
    """at_width(n): the CLI's consoles are n columns wide (as with COLUMNS=n)."""

    def set_width(width: int) -> None:
        for shown in (console, err_console):
            monkeypatch.setattr(shown, "_width", width)

    return set_width


def assert_fits(text: str, width: int) -> None:
    wide = [line for line in text.splitlines() if len(line.rstrip()) > width]
    assert wide == [], f"lines wider than {width}:\n" + "\n".join(wide)


def assert_names_intact(text: str, names: list[str]) -> None:
    """Each name shows whole or as start…end of itself: no token is a piece of a name (its
    start at a line's end, its rest on the next line) or a shortening of none of them."""
    for raw in text.split():
        token = raw.strip(",;:()")
        if token in names or len(token) < 6:  # shorter pieces read as words
            continue
        if "…" in token:
            start, end = token.split("…", 1)
            if any(start and n.startswith(start) for n in names):
                assert any(
                    n.startswith(start) and n.endswith(end) and len(n) > len(token) - 1
                    for n in names
                ), f"{token!r} shortens none of {names}"
            continue
        for name in names:
            piece = token != name and (name.startswith(token) or name.endswith(token))
            assert not piece, f"{name!r} broken: {token!r} in\n{text}"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    "args",
    [
        ("results", "show"),
        ("results", "compare", "1", "2"),
        ("results", "list"),
        ("results", "report"),
    ],
    ids=["show", "compare", "list", "report"],
)
def test_results_tables_fit_and_keep_names_whole(run_cli, at_width, db, args, width):
    at_width(width)
    outcome = run_cli(*args, "--db", db)
    assert outcome.code == 0, outcome.err
    assert_fits(outcome.out, width)
    assert_names_intact(outcome.out, MODEL_NAMES + list(DEVICES))
    if args[1] != "list":
        shown = [n for n in MODEL_NAMES if n in outcome.out]
        shortened = [n for n in MODEL_NAMES if shorten_middle(n, 12) in outcome.out]
        assert shown or shortened  # the models are there, whole or shortened
    if args[1] in ("show", "report"):
        assert "local: pruned fp32 models are not faster" in " ".join(outcome.out.split())
        assert "99.75" in outcome.out and "0.998" not in outcome.out  # top-1 in percent


def test_results_show_at_160_columns_is_one_line_per_measurement(run_cli, at_width, db):
    at_width(160)
    outcome = run_cli("results", "show", "--db", db)
    lines = outcome.out.splitlines()
    for name in MODEL_NAMES:
        rows = [line for line in lines if line.startswith(name) and "thread(s)" not in line]
        assert len(rows) == len(DEVICES)  # whole, in a table row (not a vertical block)


def test_a_pipe_gets_80_columns(db):
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | {"PYTHONPATH": str(REPO)}
    code = "import sys; from edgeprune.cli.app import run; sys.exit(run(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, "results", "show", "--db", db],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert_fits(proc.stdout, 80)
    assert_names_intact(proc.stdout, MODEL_NAMES + list(DEVICES))


@pytest.mark.parametrize("width", WIDTHS)
def test_devices_list_and_check_fit(run_cli, at_width, tmp_path, width):
    inventory = tmp_path / "devices.yaml"
    inventory.write_text(
        "devices:\n"
        "  - name: raspberrypi4-livingroom-shelf\n"
        "    host: raspberrypi4-livingroom-shelf.local\n"
        "    user: pi\n"
        "    tags: [arm64, pi4]\n",
        encoding="utf-8",
    )
    at_width(width)
    listed = run_cli("devices", "list", "--inventory", inventory)
    assert listed.code == 0, listed.err
    assert_fits(listed.out, width)
    assert_names_intact(listed.out, ["raspberrypi4-livingroom-shelf"])
    checked = run_cli("devices", "check", "local", "--inventory", inventory)
    assert checked.code in (0, 3), checked.err
    assert_fits(checked.out, width)
    assert any(line.split()[:1] == ["local"] for line in checked.out.splitlines())
    found = json.loads(run_cli("devices", "check", "local", "--json").out)["devices"][0]
    said = " ".join(checked.out.split())
    for problem in found["problems"]:  # a sentence after the table, not a word per line in it
        assert f"local: {problem}" in said


@pytest.mark.parametrize("width", WIDTHS)
def test_inspect_tables_fit_with_long_layer_names(run_cli, at_width, keras_model, width):
    at_width(width)
    outcome = run_cli("inspect", keras_model)
    assert outcome.code == 0, outcome.err
    assert_fits(outcome.out, width)
    assert_names_intact(outcome.out, [LONG_LAYER])


LONG_LAYER = "expanded_pointwise_convolution_block_number_one"


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    import keras

    inputs = keras.Input((8, 8, 1), name="digits")
    x = keras.layers.Conv2D(4, 3, name=LONG_LAYER)(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(10, name="classifier")(x)
    path = Path(tmp_path_factory.mktemp("inspect")) / "model_with_a_rather_long_file_name.keras"
    keras.Model(inputs, outputs).save(path)
    return str(path)


LONG_VARIANTS = {
    "dense": "dense",
    "int8": "mobilenet_int8_channels0.5_gradual",
    "slow": "slowvariant_q7z_xy",
}


@pytest.mark.parametrize("width", WIDTHS)
def test_recipe_report_fits_keeps_variants_whole_and_explains_the_missing_sparse_path(
    capsys, at_width, width
):
    from recipes.test_recipe_report import record, rows

    from device_agents.sparse_support import sparse_path_support
    from edgeprune.cli.present_recipe import print_report
    from edgeprune.recipes.report import build_report

    recorded = record()
    for variant in recorded["variants"]:
        variant["name"] = LONG_VARIANTS[variant["name"]]
    recorded["measurements"]["pi4"] = {
        LONG_VARIANTS[k]: v for k, v in recorded["measurements"]["pi4"].items()
    }
    measured = rows()
    for row in measured:  # measured on an x86 host
        row["result"]["sparse_path"] = sparse_path_support("ai_edge_litert", "2.3.0", "x86_64", [])
    at_width(width)
    capsys.readouterr()
    print_report(build_report(recorded, measured, 1))
    out = capsys.readouterr().out
    assert_fits(out, width)
    assert_names_intact(out, list(LONG_VARIANTS.values()))
    said = " ".join(out.split())
    assert "pi4: pruned fp32 models are not faster than dense ones here: XNNPACK never" in said
    assert "baseline top-1 98.06 %" in said  # percent, two decimals
