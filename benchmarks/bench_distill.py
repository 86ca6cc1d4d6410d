"""Gradual pruning with and without `--distill`, side by side, on issue 18's digits setup.

sklearn digits resized to 32×32×3 (bilinear, grey copied to three channels), a fixed
stratified 1,400 train / 397 test split; Conv 32-64-128 (3×3, ReLU, 2×2 max-pool after the
first two) + GAP + Dense 128 + Dense 10 (softmax). The dense teacher trains first
(`TEACHER_EPOCHS` epochs, Adam 1e-3); then each variant starts from its weights and prunes
for 10 epochs in all: PolynomialDecay 0 → S over the first 6 epochs, masks updated every ¼
epoch, Adam 1e-4, batch 32, the same seed. With distillation the dense model is the teacher
at `DistillFields`' defaults (what this bench measures is what users get).

Every drop is in points of top-1 on the 397 test samples against the dense model, with a
95 % paired bootstrap interval (`edgeprune.stats.accuracy.accuracy_drop`); the 80 % row
compares distilled against plain on the same samples.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from benchmarks.common import Ratio

TRAIN = 1400
TEACHER_EPOCHS = 30
EPOCHS = 10
RAMP_EPOCHS = 6
BATCH_SIZE = 32
LEARNING_RATE = 1e-4
SPARSITIES = (0.9, 0.8)
SEED = 0


def digits_32() -> Any:
    """The issue's data: digits at 32×32×3 in [0, 1], 1,400 train / 397 test (stratified)."""
    import tensorflow as tf
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from edgeprune.data import Dataset

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[..., None]
    x = tf.image.resize(x, (32, 32), method="bilinear").numpy()
    x = np.repeat(x, 3, axis=-1).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, train_size=TRAIN, stratify=y, random_state=SEED
    )
    return Dataset("digits32", x_train, y_train, x_test, y_test, [str(i) for i in range(10)])


def build_model() -> Any:
    from edgeprune import _tf

    keras = _tf.keras()
    layers = keras.layers
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(128, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="digits32")


def _correct(model: Any, data: Any) -> np.ndarray:
    scores = model.predict(data.x_val, batch_size=256, verbose=0)
    return np.asarray(scores.argmax(axis=-1) == data.y_val)


def run() -> list[Ratio]:
    from edgeprune import _tf
    from edgeprune.prune import prune_gradually
    from edgeprune.stats.accuracy import accuracy_drop
    from edgeprune.tasks.options import DistillFields

    keras = _tf.keras()
    data = digits_32()
    keras.utils.set_random_seed(SEED)
    dense = build_model()
    dense.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    dense.fit(data.x_train, data.y_train, batch_size=BATCH_SIZE, epochs=TEACHER_EPOCHS, verbose=0)
    dense_correct = _correct(dense, data)
    steps_per_epoch = math.ceil(len(data.x_train) / BATCH_SIZE)
    defaults = DistillFields()
    rows: list[Ratio] = []
    for sparsity in SPARSITIES:
        drops = {}
        correct = {}
        for distill in (False, True):
            model = keras.models.clone_model(dense)
            model.set_weights(dense.get_weights())
            model.compile(loss="sparse_categorical_crossentropy")
            prune_gradually(
                model,
                data,
                sparsity,
                epochs=EPOCHS,
                batch_size=BATCH_SIZE,
                learning_rate=LEARNING_RATE,
                end_step=RAMP_EPOCHS * steps_per_epoch,
                frequency=max(1, steps_per_epoch // 4),
                seed=SEED,
                distill=distill,
                evaluate=False,
            )
            correct[distill] = _correct(model, data)
            drops[distill] = accuracy_drop(dense_correct, correct[distill], None)
        for distill in (False, True):
            drop = drops[distill]
            label = "--distill" if distill else "plain"
            rows.append(
                Ratio(
                    f"{sparsity:.0%} sparsity, {label}: top-1 drop vs dense (points)",
                    drop.drop_points,
                    goal=2.0 if distill and sparsity >= 0.9 else None,
                    detail={
                        "ci95": f"{drop.ci[0]:.1f}..{drop.ci[1]:.1f}",
                        "dense_top1": float(dense_correct.mean()),
                        "top1": float(correct[distill].mean()),
                        "test_samples": int(dense_correct.size),
                        **(
                            {"temperature": defaults.temperature, "alpha": defaults.alpha}
                            if distill
                            else {}
                        ),
                    },
                )
            )
        versus = accuracy_drop(correct[False], correct[True], None)
        rows.append(
            Ratio(
                f"{sparsity:.0%} sparsity: --distill top-1 drop minus plain drop (points)",
                versus.drop_points,
                goal=0.0 if sparsity < 0.9 else None,
                detail={
                    "ci95": f"{versus.ci[0]:.1f}..{versus.ci[1]:.1f}",
                    "mcnemar_p": versus.mcnemar_p,
                },
            )
        )
    rows.append(
        Ratio(
            "dense teacher top-1 (fraction)",
            float(dense_correct.mean()),
            detail={"teacher_epochs": TEACHER_EPOCHS, "train": len(data.x_train)},
            higher_is_better=True,
        )
    )
    return rows
