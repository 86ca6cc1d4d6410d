"""`--tensorboard DIR`: Keras' writer logs loss and metrics, pruning adds sparsity and
thresholds per step; read back with TensorBoard's own event reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeprune.errors import UserError


def _scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    import tensorflow as tf

    runs = [p for p in log_dir.rglob("events.out.tfevents.*")]
    assert runs, f"no event files under {log_dir}"
    out: dict[str, list[tuple[int, float]]] = {}
    for directory in {p.parent for p in runs}:
        reader = event_accumulator.EventAccumulator(
            str(directory), size_guidance={event_accumulator.TENSORS: 0}
        )
        reader.Reload()
        for tag in reader.Tags()["tensors"]:
            out[tag] = [
                (e.step, float(tf.make_ndarray(e.tensor_proto))) for e in reader.Tensors(tag)
            ]
    return out


def test_gradual_prune_logs_sparsity_threshold_and_loss(run_cli, demo_model_path, tmp_path):
    logs = tmp_path / "tb"
    outcome = run_cli(
        "prune",
        demo_model_path,
        "-o",
        tmp_path / "p.keras",
        "--sparsity",
        "0.6",
        "--data",
        "digits",
        "--epochs",
        "2",
        "--tensorboard",
        logs,
        "--quiet",
    )
    assert outcome.code == 0, outcome.err
    scalars = _scalars(logs)
    assert "epoch_loss" in scalars and len(scalars["epoch_loss"]) == 2
    sparsity = {t: v for t, v in scalars.items() if t.startswith("sparsity/")}
    thresholds = {t: v for t, v in scalars.items() if t.startswith("threshold/")}
    assert sparsity and set(t.split("/", 1)[1] for t in sparsity) == set(
        t.split("/", 1)[1] for t in thresholds
    )
    target = scalars["pruning/target_sparsity"]
    steps = [s for s, _ in target]
    assert steps == sorted(steps) and target[-1][1] == pytest.approx(0.6)
    for values in sparsity.values():  # every kernel ramps up to the target
        assert values[-1][1] == pytest.approx(0.6, abs=0.02)
        assert values[0][1] <= values[-1][1]
    for values in thresholds.values():
        assert values[-1][1] > 0


def test_channels_fine_tune_logs_loss(run_cli, demo_model_path, tmp_path):
    logs = tmp_path / "tb"
    outcome = run_cli(
        "channels",
        demo_model_path,
        "-o",
        tmp_path / "c.keras",
        "--ratio",
        "0.25",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--tensorboard",
        logs,
        "--quiet",
    )
    assert outcome.code == 0, outcome.err
    assert len(_scalars(logs)["epoch_loss"]) == 1


def test_bad_log_dirs_are_refused_before_training(run_cli, demo_model_path, tmp_path):
    from edgeprune.prune.options import PruneOptions

    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(UserError, match="tensorboard .* is a file"):
        PruneOptions.create(0.5, data="digits", tensorboard=str(a_file))
    with pytest.raises(UserError, match="only for gradual pruning"):
        PruneOptions.create(0.5, tensorboard=str(tmp_path / "tb"))
    outcome = run_cli(
        "channels",
        demo_model_path,
        "-o",
        tmp_path / "c.keras",
        "--ratio",
        "0.25",
        "--tensorboard",
        tmp_path / "tb",
    )
    assert outcome.code == 2
    assert outcome.err.startswith("error: --tensorboard logs a fine-tune, which needs --data")
    assert not (tmp_path / "c.keras").exists()
