"""Facts about Keras layer classes that more than one graph walker relies on."""

from __future__ import annotations

# Identity at inference (they only act in training): the converter drops them, and a
# channel count or an XNNPACK cluster passes through them unchanged.
INFERENCE_IDENTITY_LAYERS = (
    "Identity",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
)
