"""Mask math, patterns and schedules: numpy only, checked against independent re-derivations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprune.errors import UserError
from edgeprune.prune.masks import kernel_masks, magnitude_mask, prune_counts
from edgeprune.prune.options import PruneOptions, resolve_sparsity
from edgeprune.prune.patterns import (
    CONV_LAYOUT,
    DENSE_LAYOUT,
    BlockPattern,
    KernelLayout,
    NMPattern,
    from_matrices,
    parse_pattern,
    to_matrices,
)
from edgeprune.prune.schedules import (
    ConstantSparsity,
    PolynomialDecay,
    schedule_from_config,
)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(1, 500),
    sparsity=st.floats(0.0, 0.99),
    seed=st.integers(0, 2**16),
)
def test_magnitude_mask_prunes_exactly_the_smallest(size: int, sparsity: float, seed: int):
    weights = _rng(seed).normal(size=size).astype(np.float32)
    keep = magnitude_mask(weights, sparsity)
    pruned = round(sparsity * size)
    assert np.count_nonzero(~keep) == pruned
    if 0 < pruned < size:
        assert np.abs(weights[~keep]).max() <= np.abs(weights[keep]).min()


def test_magnitude_mask_prefers_existing_zeros():
    weights = np.array([0.0, 5.0, 0.0, -3.0, 0.1, 2.0], dtype=np.float32)
    keep = magnitude_mask(weights, 0.5)
    assert keep.tolist() == [False, True, False, True, False, True]


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(20, 400), min_size=1, max_size=6),
    sparsity=st.floats(0.0, 0.95),
    seed=st.integers(0, 2**16),
)
def test_global_counts_follow_one_threshold(sizes: list[int], sparsity: float, seed: int):
    rng = _rng(seed)
    scores = [np.abs(rng.normal(scale=rng.uniform(0.1, 3), size=n)) for n in sizes]
    counts = prune_counts(scores, sparsity, "global")
    assert sum(counts) == round(sparsity * sum(sizes))
    pruned = np.concatenate([np.sort(s)[:c] for s, c in zip(scores, counts, strict=True)])
    kept = np.concatenate([np.sort(s)[c:] for s, c in zip(scores, counts, strict=True)])
    if pruned.size and kept.size:
        assert pruned.max() <= kept.min()


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(50, 400), min_size=2, max_size=6),
    sparsity=st.floats(0.3, 0.9),
    cap_gap=st.floats(0.0, 0.09),
    seed=st.integers(0, 2**16),
)
def test_balanced_caps_every_layer_and_still_reaches_the_total(
    sizes: list[int], sparsity: float, cap_gap: float, seed: int
):
    rng = _rng(seed)
    # one layer of tiny weights that a global threshold would empty completely
    scores = [
        np.abs(rng.normal(scale=0.001 if i == 0 else 1.0, size=n)) for i, n in enumerate(sizes)
    ]
    cap = min(1.0, sparsity + cap_gap)
    counts = prune_counts(scores, sparsity, "balanced", cap)
    for count, n in zip(counts, sizes, strict=True):
        assert count <= int(np.floor(cap * n + 1e-9))
    assert abs(sum(counts) - round(sparsity * sum(sizes))) <= len(sizes)


def test_balanced_spreads_the_remainder_by_magnitude():
    small = np.full(100, 0.001)
    big_low = np.linspace(0.1, 1.0, 100)
    big_high = np.linspace(10.0, 20.0, 100)
    counts = prune_counts([small, big_low, big_high], 0.5, "balanced", 0.8)
    assert counts[0] == 80  # capped
    assert sum(counts) == 150
    assert counts[1] == 70 and counts[2] == 0  # the rest from the next-smallest weights
    assert prune_counts([small, big_low, big_high], 0.5, "global")[0] == 100


def test_local_scope_gives_every_kernel_the_target():
    scores = [np.arange(n, dtype=float) for n in (10, 333, 1000)]
    assert prune_counts(scores, 0.7, "local") == [7, 233, 700]


@pytest.mark.parametrize(
    ("shape", "layout"),
    [((3, 3, 8, 12), CONV_LAYOUT), ((16, 6), DENSE_LAYOUT), ((12, 3, 3, 8), KernelLayout(3, 0))],
)
def test_matrix_view_round_trips(shape, layout):
    weights = _rng().normal(size=shape)
    matrices = to_matrices(weights, layout)
    in_axis, out_axis = layout.axes(len(shape))
    assert matrices.shape[1:] == (shape[out_axis], shape[in_axis])
    assert np.array_equal(from_matrices(matrices, shape, layout), weights)


@settings(max_examples=25, deadline=None)
@given(
    nm=st.sampled_from([(1, 2), (2, 4), (1, 4), (4, 8), (3, 8)]),
    groups=st.integers(1, 4),
    out=st.integers(1, 6),
    taps=st.sampled_from([(1, 1), (3, 3)]),
    seed=st.integers(0, 2**16),
)
def test_nm_mask_is_exact_in_every_group(nm, groups, out, taps, seed):
    n, m = nm
    pattern = NMPattern(n, m)
    shape = (*taps, groups * m, out)
    weights = _rng(seed).normal(size=shape).astype(np.float32)
    keep = pattern.mask(weights, CONV_LAYOUT, pattern.fixed_sparsity)
    pruned = np.where(keep, weights, 0)
    # independent check: (kh, kw, in/M, M, out) -> non-zeros per group along the input axis
    per_group = np.count_nonzero(pruned.reshape(*taps, groups, m, out), axis=-2)
    assert per_group.max() <= n and per_group.min() == n
    kept_abs = np.abs(weights.reshape(*taps, groups, m, out))
    keep_g = keep.reshape(*taps, groups, m, out)
    lowest_kept = np.where(keep_g, kept_abs, np.inf).min(axis=-2)
    highest_pruned = np.where(keep_g, -np.inf, kept_abs).max(axis=-2)
    assert np.all(highest_pruned <= lowest_kept)
    assert pattern.violations(pruned, CONV_LAYOUT) == 0


def test_nm_partial_ramp_only_prunes_group_candidates():
    pattern = NMPattern(2, 4)
    weights = _rng(3).normal(size=(64, 8)).astype(np.float32)
    keep = pattern.mask(weights, DENSE_LAYOUT, 0.25)
    assert np.count_nonzero(~keep) == round(0.25 * weights.size)
    final = pattern.mask(weights, DENSE_LAYOUT, 0.5)
    assert not np.any(~keep & final)  # everything pruned now is pruned at the end too


def test_nm_violations_counts_groups():
    weights = np.ones((8, 2), dtype=np.float32)  # Dense (in=8, out=2): 4 groups of 4
    assert NMPattern(2, 4).violations(weights, DENSE_LAYOUT) == 4
    weights[[0, 1, 4, 5], :] = 0
    assert NMPattern(2, 4).violations(weights, DENSE_LAYOUT) == 0


@settings(max_examples=25, deadline=None)
@given(
    block=st.sampled_from([(4, 1), (2, 2), (1, 4), (8, 1)]),
    sparsity=st.floats(0.0, 0.95),
    seed=st.integers(0, 2**16),
)
def test_block_mask_is_exact_and_as_close_as_blocks_allow(block, sparsity, seed):
    rows, cols = block
    pattern = BlockPattern(rows, cols)
    shape = (1, 1, 4 * cols, 4 * rows * 2)  # Conv2D 1x1: (1, 1, in, out)
    weights = _rng(seed).normal(size=shape).astype(np.float32)
    [keep] = kernel_masks([weights], [CONV_LAYOUT], sparsity, pattern=pattern)
    # independent check: (in/C, C, out/R, R) blocks are all kept or all dropped
    blocks = keep.reshape(4, cols, 8, rows)
    per_block = blocks.sum(axis=(1, 3))
    assert set(np.unique(per_block)) <= {0, rows * cols}
    units = per_block.size
    assert np.count_nonzero(per_block == 0) == round(sparsity * units)
    assert pattern.violations(np.where(keep, weights, 0), CONV_LAYOUT) == 0


def test_block_4x1_groups_output_channels_of_a_dense_kernel():
    weights = _rng(1).normal(size=(3, 8)).astype(np.float32)  # Dense (in=3, out=8)
    weights[1, 4:8] = 1e-4  # one 4-output block of input 1 is tiny
    [keep] = kernel_masks([weights], [DENSE_LAYOUT], 1 / 6, pattern=BlockPattern(4, 1))
    assert not keep[1, 4:8].any() and keep.sum() == 20


def test_global_scope_with_blocks_counts_whole_blocks():
    rng = _rng(2)
    kernels = [rng.normal(size=(8, 8)).astype(np.float32), 0.01 * rng.normal(size=(16, 8))]
    masks = kernel_masks(
        kernels, [DENSE_LAYOUT] * 2, 0.5, scope="global", pattern=BlockPattern(4, 1)
    )
    total = sum(k.size for k in kernels)
    assert sum(np.count_nonzero(~m) for m in masks) == total // 2
    assert np.count_nonzero(~masks[1]) > np.count_nonzero(~masks[0])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2:4", NMPattern(2, 4)),
        (" 1 : 8 ", NMPattern(1, 8)),
        ("block:4x1", BlockPattern(4, 1)),
        ("BLOCK:2X2".lower(), BlockPattern(2, 2)),
        (None, None),
        ("", None),
    ],
)
def test_parse_pattern_accepts(text, expected):
    assert parse_pattern(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3:2", "1 <= N < M"),
        ("0:4", "1 <= N < M"),
        ("4:4", "1 <= N < M"),
        ("block:0x4", "block sizes must be >= 1"),
        ("block:1x1", "unstructured"),
        ("foo", "not understood"),
        ("2:4:8", "not understood"),
        ("block:4", "not understood"),
    ],
)
def test_parse_pattern_rejects(text, message):
    with pytest.raises(UserError, match=message):
        parse_pattern(text)


def test_pattern_shape_problems_name_the_axis():
    assert "input channels are not a multiple of 4" in NMPattern(2, 4).shape_problem(
        (3, 3, 3, 32), CONV_LAYOUT
    )
    assert "output channels are not a multiple of 4" in BlockPattern(4, 1).shape_problem(
        (1, 1, 16, 10), CONV_LAYOUT
    )
    assert "depthwise" in NMPattern(2, 4).shape_problem((3, 3, 8, 1), KernelLayout(None, None))
    assert NMPattern(2, 4).shape_problem((1, 1, 16, 10), CONV_LAYOUT) is None


def test_nm_sparsity_is_fixed_by_the_pattern():
    assert resolve_sparsity(None, NMPattern(2, 4)) == 0.5
    assert resolve_sparsity(0.5, NMPattern(2, 4)) == 0.5
    assert resolve_sparsity(0.875, NMPattern(1, 8)) == 0.875
    with pytest.raises(UserError, match="fixes sparsity at 0.5 but 0.7"):
        resolve_sparsity(0.7, NMPattern(2, 4))
    with pytest.raises(UserError, match="no sparsity given"):
        resolve_sparsity(None, None)
    with pytest.raises(UserError, match="scope 'local'"):
        PruneOptions.create(None, pattern="2:4", scope="global")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sparsity": 1.0}, r"outside \[0, 0.99\]"),
        ({"sparsity": -0.1}, r"outside \[0, 0.99\]"),
        ({"sparsity": "x"}, "not a number"),
        ({"sparsity": 0.5, "scope": "everywhere"}, "not one of local, global, balanced"),
        ({"sparsity": 0.9, "scope": "balanced", "max_layer_sparsity": 0.8}, "below the target"),
        ({"sparsity": 0.5, "max_layer_sparsity": 0.0}, r"must be in \(0, 1\]"),
        ({"sparsity": 0.5, "policy": "nope"}, "policy 'nope' is not known"),
    ],
)
def test_prune_options_reject_bad_values(kwargs, message):
    sparsity = kwargs.pop("sparsity")
    with pytest.raises(UserError, match=message):
        PruneOptions.create(sparsity, **kwargs)


def test_polynomial_schedule_ramps_and_hits_the_end_step():
    schedule = PolynomialDecay(0.0, 0.8, begin_step=10, end_step=105, frequency=10)
    assert schedule(0) == (False, 0.0)
    assert schedule(10) == (True, 0.0)
    assert schedule(15)[0] is False
    assert schedule(20)[0] is True
    halfway = schedule.sparsity_at(57.5)  # type: ignore[arg-type]
    assert halfway == pytest.approx(0.8 - 0.8 * 0.5**3)
    assert schedule(105) == (True, pytest.approx(0.8))  # end step although 95 % 10 != 0
    assert schedule(106)[0] is False and schedule.sparsity_at(500) == pytest.approx(0.8)
    values = [schedule.sparsity_at(s) for s in range(10, 106)]
    assert values == sorted(values)


def test_constant_schedule_and_config_round_trip():
    schedule = ConstantSparsity(0.6, begin_step=5, end_step=None, frequency=3)
    assert schedule(4) == (False, 0.0)
    assert schedule(5) == (True, 0.6) and schedule(8) == (True, 0.6) and schedule(9)[0] is False
    assert schedule(10**6 + 5) == (False, 0.6)  # no end step: keeps its rhythm forever
    assert schedule(10**6 + 7) == (True, 0.6)
    for original in (schedule, PolynomialDecay(0.1, 0.9, 0, 50, power=2, frequency=5)):
        assert schedule_from_config(original.get_config()) == original


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PolynomialDecay(0, 0.8, 10, 10), "greater than begin-step"),
        (lambda: PolynomialDecay(0, 0.8, 10, 5), "greater than begin-step"),
        (lambda: PolynomialDecay(0, 0.8, -1, 5), ">= 0"),
        (lambda: PolynomialDecay(0, 0.8, 0, 5, frequency=0), "frequency"),
        (lambda: PolynomialDecay(0.9, 0.5, 0, 5), "above the final"),
        (lambda: PolynomialDecay(0, 0.8, 0, 5, power=0), "power"),
        (lambda: PolynomialDecay(0, 1.2, 0, 5), "outside"),
        (lambda: ConstantSparsity(0.5, 3, 2), "greater than begin-step"),
        (lambda: schedule_from_config({"kind": "cosine"}), "not one of"),
    ],
)
def test_schedule_rejects_bad_steps(make, message):
    with pytest.raises(UserError, match=message):
        make()
