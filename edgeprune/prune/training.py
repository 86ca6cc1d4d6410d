"""What fine-tuning a user's classifier needs: the right loss and a top-1 accuracy.

The logic lives with the classification task (edgeprune.tasks.classification); these names
stay for the callers that import them from here.
"""

from __future__ import annotations

from edgeprune.tasks.classification import (
    BINARY_LOGITS,
    BINARY_PROBABILITIES,
    LOGITS,
    PROBABILITIES,
    check_classes,
    classification_loss,
    output_kind,
    output_layer,
    predict_labels,
    top1_accuracy,
)

__all__ = [
    "BINARY_LOGITS",
    "BINARY_PROBABILITIES",
    "LOGITS",
    "PROBABILITIES",
    "check_classes",
    "classification_loss",
    "output_kind",
    "output_layer",
    "predict_labels",
    "top1_accuracy",
]
