"""A proposal is ranked on data held out of its fine-tune, not on the validation data."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.adapt.proposal import run_proposal


@pytest.mark.parametrize(("fraction", "ranks_on"), [(0.2, "holdout"), (0.0, "validation")])
def test_the_proposal_scores_on_its_holdout(tiny_model_path, digits, tmp_path, fraction, ranks_on):
    # validation labels all wrong: a score on them is near 0, one on the training data is not
    data = tmp_path / "d.npz"
    np.savez(
        data,
        x=digits.x_train,
        y=digits.y_train,
        x_val=digits.x_val,
        y_val=(digits.y_val + 1) % 10,
    )
    item = {
        "model": str(tiny_model_path),
        "group": "conv_a",
        "width": 16,
        "output": str(tmp_path / "p.keras"),
        "data": str(data),
        "criterion": "l1",
        "epochs": 1,
        "holdout": fraction,
        "finetune": {
            "batch_size": 32,
            "learning_rate": 1e-3,
            "learning_rate_decay": "cosine",
            "seed": 0,
        },
    }
    top1 = run_proposal(item)["top1"]
    if ranks_on == "holdout":
        assert top1 > 0.6
    else:
        assert top1 < 0.2
    assert (tmp_path / "p.keras").exists()
