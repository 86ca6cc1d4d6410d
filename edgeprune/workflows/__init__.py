"""Workflows: several lower parts composed into one job (bench into a store, the sparse A/B, inspect with XNNPACK's verdict)."""
