"""QAT against post-training int8 (PTQ), side by side in one run on digits.

(a) A PTQ-hard model: a small digits CNN whose last conv has one *outlier channel*, a
constant activation OUTLIER times the size of the others that the classifier ignores
(weight 0), so the float model is unchanged. Real networks have such channels (Nagel et al.,
"Data-Free Quantization", 2019: MobileNetV2's depthwise layers; LLM.int8's outlier features).
TFLite quantizes an activation per tensor, so that one channel sets the int8 scale of all of
them and the informative channels keep only a few levels: PTQ loses points. QAT fine-tunes
with that rounding in the forward pass and the classifier learns the quantized features.

QAT's int8 is held to the float model (the issue's acceptance) and, as a control shown
beside it, to the float model fine-tuned for the same extra epochs (QAT's fine-tune is also
more training, which a float model would get too).

(b) PQAT: the same CNN without the outlier, pruned to 80 % (gradually, with fine-tuning) and
then QAT'd with `preserve_sparsity`: zeros in the int8 kernels, its int8 top-1 against PTQ
int8 of the same pruned model, and Keras-QAT vs TFLite top-1 agreement.

Accuracies are top-1 on the digits validation split (359 samples) with Wilson 95 % intervals.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Ratio

OUTLIER = 600.0
FLOAT_EPOCHS = 40
QAT_EPOCHS = 8
SEED = 0


def build(keras: Any, shape: tuple[int, ...]) -> Any:
    layers = keras.layers
    inputs = keras.Input(shape, name="pixels")
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="features")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(10, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def add_outlier(model: Any) -> None:
    """Channel 0 of `features` becomes a constant OUTLIER (kernel 0, bias OUTLIER) that the
    classifier ignores (its row of weights 0): the float outputs do not change."""
    features, classifier = model.get_layer("features"), model.get_layer("classifier")
    kernel, bias = (w.copy() for w in features.get_weights())
    kernel[..., 0], bias[0] = 0.0, OUTLIER
    features.set_weights([kernel, bias])
    weights, offset = (w.copy() for w in classifier.get_weights())
    weights[0, :] = 0.0
    classifier.set_weights([weights, offset])


def run() -> list[Ratio]:
    from edgeprune import _tf
    from edgeprune.data import load_dataset
    from edgeprune.prune.task_training import predict_outputs
    from edgeprune.quantize.int8_kernels import int8_kernel_zeros
    from edgeprune.quantize.pipeline import qat_model
    from edgeprune.stats.accuracy import wilson_ci
    from edgeprune.tflite.conversion import convert
    from edgeprune.tflite.predictors import TFLitePredictor

    keras = _tf.keras()
    data = load_dataset("digits")
    y = np.asarray(data.y_val)

    def top1(outputs: np.ndarray) -> float:
        return float(np.mean(np.argmax(outputs, -1) == y))

    def interval(value: float) -> str:
        low, high = wilson_ci(round(value * len(y)), len(y))
        return f"[{low:.3f}, {high:.3f}]"

    def int8(model: Any, folder: Path, name: str) -> tuple[np.ndarray, dict[str, Any]]:
        out = folder / f"{name}.tflite"
        convert(model, out, quantize="int8", data="digits")
        return TFLitePredictor(out, name).predict_all(data.x_val)[0], int8_kernel_zeros(out)

    keras.utils.set_random_seed(SEED)
    base = build(keras, data.sample_shape)
    base.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    with _tf.quiet_native_output():
        base.fit(data.x_train, data.y_train, epochs=FLOAT_EPOCHS, batch_size=64, verbose=0)

    with tempfile.TemporaryDirectory(prefix="bench-qat-") as tmp:
        folder = Path(tmp)
        # (a) PTQ-hard: outlier channel
        hard = keras.models.clone_model(base)
        hard.set_weights(base.get_weights())
        add_outlier(hard)
        float_top1 = top1(predict_outputs(hard, data.x_val)[0])
        # control: the same extra epochs in float, so QAT is not credited with more training
        tuned = keras.models.clone_model(hard)
        tuned.set_weights(hard.get_weights())
        tuned.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        keras.utils.set_random_seed(SEED)
        with _tf.quiet_native_output():
            tuned.fit(data.x_train, data.y_train, epochs=QAT_EPOCHS, batch_size=32, verbose=0)
        tuned_top1 = top1(predict_outputs(tuned, data.x_val)[0])
        reference = max(float_top1, tuned_top1)
        ptq_out, _ = int8(hard, folder, "ptq")
        qat, _ = qat_model(hard, data, epochs=QAT_EPOCHS, learning_rate=1e-3, seed=SEED)
        qat_out, _ = int8(qat, folder, "qat")
        ptq_top1, qat_top1 = top1(ptq_out), top1(qat_out)

        # (b) PQAT on an 80 %-pruned model
        import edgeprune as ep

        pruned = ep.prune(base, 0.8, data=data, epochs=6, min_params=1).model
        pruned_float = top1(predict_outputs(pruned, data.x_val)[0])
        pruned_ptq_out, ptq_zeros = int8(pruned, folder, "pruned-ptq")
        pqat, report = qat_model(pruned, data, epochs=QAT_EPOCHS, seed=SEED)
        pqat_out, pqat_zeros = int8(pqat, folder, "pqat")
        pqat_keras = predict_outputs(pqat, data.x_val)[0]
        agreement = float(np.mean(np.argmax(pqat_out, -1) == np.argmax(pqat_keras, -1)))
        pruned_ptq_top1, pqat_top1 = top1(pruned_ptq_out), top1(pqat_out)

    return [
        Ratio(
            "PTQ-hard model: float top-1 - PTQ int8 top-1 (points)",
            100 * (float_top1 - ptq_top1),
            goal=2.0,
            higher_is_better=True,
            detail={
                "float": float_top1,
                "float_ci": interval(float_top1),
                "ptq_int8": ptq_top1,
                "ptq_ci": interval(ptq_top1),
                "outlier": OUTLIER,
            },
        ),
        Ratio(
            "PTQ-hard model: float top-1 - QAT int8 top-1 (points)",
            100 * (float_top1 - qat_top1),
            goal=0.5,
            detail={
                "qat_int8": qat_top1,
                "qat_ci": interval(qat_top1),
                "float_finetuned": tuned_top1,
                "epochs": QAT_EPOCHS,
            },
        ),
        Ratio(
            "PTQ-hard model: float fine-tuned as long - QAT int8 top-1 (points; control)",
            100 * (tuned_top1 - qat_top1),
            detail={"float_finetuned": tuned_top1, "best_float": reference},
        ),
        Ratio(
            "PQAT 80 %: zeros in the int8 kernels",
            pqat_zeros["zero_fraction"],
            goal=0.795,
            higher_is_better=True,
            detail={
                "keras_sparsity": report.sparsity["overall"],
                "ptq_int8_zeros": ptq_zeros["zero_fraction"],
            },
        ),
        Ratio(
            "PQAT 80 %: PQAT int8 top-1 - PTQ int8 top-1 (points)",
            100 * (pqat_top1 - pruned_ptq_top1),
            goal=0.0,
            higher_is_better=True,
            detail={
                "pruned_float": pruned_float,
                "ptq_int8": pruned_ptq_top1,
                "ptq_ci": interval(pruned_ptq_top1),
                "pqat_int8": pqat_top1,
                "pqat_ci": interval(pqat_top1),
            },
        ),
        Ratio(
            "PQAT 80 %: Keras-QAT vs TFLite top-1 agreement",
            agreement,
            goal=0.99,
            higher_is_better=True,
        ),
    ]
