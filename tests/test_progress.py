"""Training progress: one line per epoch in a log, a live bar in a terminal, none with --quiet."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from edgeprune.cli.present_progress import describe
from edgeprune.progress import TrainingEvent, keras_callbacks, reporting


def test_eta_comes_from_the_pace_so_far():
    event = TrainingEvent("fine-tune", "epoch", epoch=2, epochs=8, step=10, steps=10, elapsed_s=4.0)
    assert event.eta_s == pytest.approx(12.0)  # 20 of 80 batches in 4 s: 60 left at 5/s
    first = TrainingEvent("fine-tune", "batch", epoch=1, epochs=2, step=0, steps=10, elapsed_s=0.0)
    assert first.eta_s is None
    text = describe(
        TrainingEvent(
            "gradual prune", "epoch", 3, 8, 45, 45, 12.0, {"loss": 0.2134, "accuracy": 0.95}
        )
    )
    assert text == "gradual prune: epoch 3/8 · loss 0.2134 · accuracy 95.00 % · 12 s · ETA 20 s"


def test_no_sink_adds_no_callback_and_a_sink_gets_every_epoch():
    assert keras_callbacks("x") == []
    seen: list[TrainingEvent] = []
    with reporting(seen.append):
        (callback,) = keras_callbacks("x")
    assert keras_callbacks("x") == []  # the sink is gone outside the block
    import numpy as np

    from edgeprune import _tf

    keras = _tf.keras()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(
        np.zeros((8, 4)), np.zeros((8, 2)), epochs=3, batch_size=4, verbose=0, callbacks=[callback]
    )
    epochs = [e for e in seen if e.kind == "epoch"]
    assert [(e.epoch, e.epochs, e.steps) for e in epochs] == [(1, 3, 2), (2, 3, 2), (3, 3, 2)]
    assert all("loss" in e.logs for e in epochs)


def test_gradual_prune_prints_one_line_per_epoch_and_quiet_prints_none(
    run_cli, demo_model_path, tmp_path
):
    args = ["prune", demo_model_path, "--sparsity", "0.5", "--data", "digits", "--epochs", "2"]
    outcome = run_cli(*args, "-o", tmp_path / "a.keras", "--json")
    assert outcome.code == 0, outcome.err
    json.loads(outcome.out)  # stdout holds the one document only
    lines = [line for line in outcome.err.splitlines() if "gradual prune: epoch" in line]
    assert [line.split(" · ")[0] for line in lines] == [
        "gradual prune: epoch 1/2",
        "gradual prune: epoch 2/2",
    ]
    assert "loss" in lines[0] and "ETA" in lines[0]
    quiet = run_cli(*args, "-o", tmp_path / "b.keras", "--quiet")
    assert quiet.code == 0, quiet.err
    assert "epoch" not in quiet.err


def test_a_terminal_sees_live_epoch_progress(demo_model_path, tmp_path):
    pexpect = pytest.importorskip("pexpect")
    command = shutil.which("edgeprune", path=str(Path(sys.executable).parent))
    assert command, "the edgeprune console script is installed beside this python"
    env = dict(os.environ, COLUMNS="100", TERM="xterm")
    child = pexpect.spawn(
        command,
        [
            "prune",
            str(demo_model_path),
            "-o",
            str(tmp_path / "p.keras"),
            "--sparsity",
            "0.5",
            "--data",
            "digits",
            "--epochs",
            "2",
        ],
        env=env,
        encoding="utf-8",
        timeout=240,
        dimensions=(40, 100),
    )
    child.expect("gradual prune")
    child.expect(r"epoch [12]/2")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before


def test_epoch_lines_reach_stderr_while_tensorflow_output_is_quieted(demo_model_path, tmp_path):
    """Channels' fine-tune trains inside `quiet_native_output` (fds 1 and 2 point at a sink):
    its epoch lines must still reach a real stderr (a pipe here, a log file in CI)."""
    import subprocess

    command = shutil.which("edgeprune", path=str(Path(sys.executable).parent))
    assert command, "the edgeprune console script is installed beside this python"
    done = subprocess.run(
        [
            command,
            "channels",
            str(demo_model_path),
            "-o",
            str(tmp_path / "slim.keras"),
            "--ratio",
            "0.25",
            "--data",
            "digits",
            "--epochs",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if ": epoch " in line]
    assert [line.split(" · ")[0].split(": ", 1)[1] for line in lines] == ["epoch 1/2", "epoch 2/2"]
