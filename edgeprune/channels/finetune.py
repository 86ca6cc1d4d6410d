"""Fine-tune a pruned model on class-id labels, with the loss its output layer calls for.

Pruning removes filters the model was using, so accuracy drops until it is retrained (TAO
and every pruning paper retrain). The loss follows the final activation: softmax outputs
get cross-entropy on probabilities, linear outputs get it on logits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeprune import _tf
from edgeprune.data import Dataset, check_fits
from edgeprune.errors import UserError
from edgeprune.progress import keras_callbacks

# Layers that sit between the last activation and the output without changing it.
_TRANSPARENT = frozenset({"Flatten", "Reshape", "Dropout", "Identity", "Activation"})


def output_activation(model: Any) -> str:
    """Name of the activation applied last ('softmax', 'sigmoid', 'linear', ...)."""
    if len(model.outputs) != 1:
        raise UserError("fine-tuning needs a model with one output; this one has several")
    operation = model.outputs[0]._keras_history[0]
    for _ in range(100):
        if hasattr(operation, "outputs") and hasattr(operation, "layers"):  # nested model
            operation = operation.outputs[0]._keras_history[0]
            continue
        name = type(operation).__name__
        if name == "Softmax":
            return "softmax"
        activation = getattr(operation, "activation", None)
        activation_name = str(getattr(activation, "__name__", activation or "linear"))
        if name == "Activation" or (activation is not None and activation_name != "linear"):
            return activation_name
        if name not in _TRANSPARENT or not operation._inbound_nodes:
            return "linear"
        operation = operation._inbound_nodes[0].input_tensors[0]._keras_history[0]
    return "linear"


def training_loss(model: Any) -> Any:
    """SparseCategoricalCrossentropy on probabilities or logits, judged from the final activation."""
    keras = _tf.keras()
    activation = output_activation(model)
    if activation == "softmax":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=False)
    if activation == "linear":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    raise UserError(
        f"the model's output ends in {activation!r}; fine-tuning supports class-id labels with a "
        "softmax or linear (logits) output"
    )


def check_data_fits(model: Any, dataset: Dataset) -> None:
    """Sample shape and class count must match the model, or a UserError says which."""
    if len(model.inputs) != 1:
        raise UserError("fine-tuning needs a model with one input; this one has several")
    check_fits(dataset, tuple(model.inputs[0].shape), model.name)
    units = model.outputs[0].shape[-1]
    if units is not None and dataset.num_classes > int(units):
        raise UserError(
            f"dataset {dataset.name!r} has {dataset.num_classes} classes but the model "
            f"outputs {units}; use a dataset with at most {units} classes"
        )


def finetune(
    model: Any,
    dataset: Dataset,
    *,
    epochs: int,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
    tensorboard: str | None = None,
) -> dict[str, float]:
    """Train `model` in place; returns the final training loss and the validation top-1."""
    if epochs < 1:
        raise UserError(f"epochs must be >= 1, got {epochs}", params=("epochs",))
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}", params=("batch_size",))
    if not (learning_rate > 0 and np.isfinite(learning_rate)):
        raise UserError(
            f"learning_rate must be a positive number, got {learning_rate}",
            params=("learning_rate",),
        )
    check_data_fits(model, dataset)
    keras = _tf.keras()
    keras.utils.set_random_seed(seed)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=training_loss(model),
        metrics=["accuracy"],
    )
    with _tf.quiet_native_output():
        history = model.fit(
            dataset.x_train,
            dataset.y_train,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=True,
            verbose=0,
            callbacks=keras_callbacks("fine-tune") + _tensorboard(keras, tensorboard),
        )
    return {"loss": float(history.history["loss"][-1]), "top1": top1(model, dataset)}


def _tensorboard(keras: Any, log_dir: str | None) -> list[Any]:
    """Keras' own TensorBoard writer for the fine-tune (loss and metrics per epoch)."""
    if not log_dir:
        return []
    return [keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False)]


def top1(model: Any, dataset: Dataset, batch_size: int = 256) -> float:
    """Validation top-1 accuracy."""
    with _tf.quiet_native_output():
        scores = model.predict(dataset.x_val, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(scores, axis=-1) == dataset.y_val))
