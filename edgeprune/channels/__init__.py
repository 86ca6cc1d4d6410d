"""Structured channel pruning: remove whole filters over dependency groups, rebuild a smaller model.

from edgeprune.channels import prune_channels
small, report = prune_channels(model, ratio=0.5)
"""

from __future__ import annotations

from edgeprune.channels.options import ChannelOptions
from edgeprune.channels.prune import check_options, prune_channels
from edgeprune.channels.report import (
    ChannelReport,
    GroupReport,
    compare_models,
    size_change_from_manifest,
)

__all__ = [
    "ChannelOptions",
    "ChannelReport",
    "GroupReport",
    "check_options",
    "compare_models",
    "prune_channels",
    "size_change_from_manifest",
]
