"""How a name and an accuracy are written for people, the same in every view.

A name (file, layer, device, variant) that cannot fit is shortened in the middle with "…",
keeping its start and its end (the suffix tells `.tflite` from `.keras`, the tail tells
`..._fp32` from `..._int8`); it is never broken across lines.

Accuracy is shown as a percent with two decimals ("99.75 %") in every human view: CLI tables
and summaries, the recipe report, the HTML report and `repr()`. Machine documents (--json, the
results store, manifests) keep the fraction in [0, 1] under names like `top1` and `accuracy`.
Differences of accuracy are in percentage points with two decimals ("0.25 points").
"""

from __future__ import annotations

ELLIPSIS = "…"
ACCURACY_DIGITS = 2


def shorten_middle(text: str, width: int) -> str:
    """`text` if it fits in `width` characters, else its start + "…" + its end in `width`.

    The end gets the extra character when the split is uneven: "cnn_gr0.8_fp32.tflite" in 12
    is "cnn_g…tflite". A width below 1 gives "".
    """
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    kept = width - 1
    head = kept // 2
    return text[:head] + ELLIPSIS + text[len(text) - (kept - head) :]


def percent(fraction: float | None, unit: bool = True) -> str:
    """An accuracy in [0, 1] as percent with two decimals: 0.9975 -> "99.75 %" ("–": none)."""
    if fraction is None:
        return "–"
    return f"{fraction * 100:.{ACCURACY_DIGITS}f}" + (" %" if unit else "")


def metric_value(value: float | None, unit: str | None, sign: bool = True) -> str:
    """A metric's value as people read it: a fraction (top-1, mIoU, mAP; `unit` "fraction" or
    None) as a percent, a value in the data's units (RMSE, MAE) to 4 significant digits."""
    if unit in (None, "fraction"):
        return percent(value, sign)
    return "–" if value is None else f"{value:.4g}"


def points(value: float | None, signed: bool = False) -> str:
    """A difference of accuracy in percentage points: 0.25 -> "0.25" (+0.25 when signed)."""
    if value is None:
        return "–"
    value = round(value, ACCURACY_DIGITS) + 0.0  # never "-0.00"
    return f"{value:+.{ACCURACY_DIGITS}f}" if signed else f"{value:.{ACCURACY_DIGITS}f}"
