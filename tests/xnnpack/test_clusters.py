"""The cluster algorithm on hand-made node graphs (no TensorFlow): XNNPACK's steps 1-3 and 2/3."""

from __future__ import annotations

import pytest

from edgeprune.xnnpack import rules
from edgeprune.xnnpack.clusters import Node, form_clusters
from edgeprune.xnnpack.rules import NCHW, NCHW2NHWC, NHWC2NCHW, Padding


def node(index, op, inputs, outputs, flags, params=0, zeros=0, problem=None):
    item = Node(index, op, f"{op} #{index}", tuple(inputs), tuple(outputs), flags, problem)
    if params:
        item.pointwise, item.params, item.zeros = True, params, zeros
    return item


def chain(zeros: int, params: int = 300) -> list[Node]:
    """input 0 -> start conv -> depthwise -> 1x1 -> MEAN -> FC (outside)."""
    return [
        node(0, "CONV_2D", [0], [1], NHWC2NCHW),
        node(1, "DEPTHWISE_CONV_2D", [1], [2], NCHW),
        node(2, "CONV_2D", [2], [3], NCHW, params=params, zeros=zeros),
        node(3, "MEAN", [3], [4], NCHW | NCHW2NHWC),
        node(4, "FULLY_CONNECTED", [4], [5], 0, problem="not in a cluster"),
    ]


@pytest.mark.parametrize(("zeros", "sparse"), [(201, True), (200, False), (0, False)])
def test_two_thirds_is_strict(zeros, sparse):
    (cluster,) = form_clusters(chain(zeros), graph_outputs=[5])
    assert cluster.structure_ok
    assert [n.index for n in cluster.nodes] == [0, 1, 2, 3]
    assert [n.index for n in cluster.starts] == [0] and [n.index for n in cluster.ends] == [3]
    assert cluster.sparse is sparse


def test_the_pointwise_weights_of_a_cluster_count_together():
    nodes = chain(zeros=290, params=300)
    nodes.insert(3, node(9, "CONV_2D", [3], [6], NCHW, params=300, zeros=150))
    nodes[4] = node(3, "MEAN", [6], [4], NCHW | NCHW2NHWC)
    (cluster,) = form_clusters(nodes, graph_outputs=[5])
    # 97 % and 50 % alone; 440 of 600 = 73 % together: sparse
    assert cluster.params == 600 and cluster.zeros == 440 and cluster.sparse


def test_a_tensor_read_outside_breaks_the_cluster():
    nodes = chain(zeros=290)
    nodes.append(node(5, "RESHAPE", [2], [7], 0, problem="not in a cluster"))
    (cluster,) = form_clusters(nodes, graph_outputs=[5, 7])
    assert not cluster.structure_ok
    (problem,) = cluster.problems
    assert problem.code == "escape" and problem.index == 1 and "RESHAPE #5" in problem.message


def test_a_model_output_inside_breaks_the_cluster():
    (cluster,) = form_clusters(chain(zeros=290), graph_outputs=[5, 3])
    assert [p.code for p in cluster.problems] == ["escape"]
    assert cluster.problems[0].index == 2


def test_a_model_input_may_enter_only_through_the_start():
    nodes = chain(zeros=290)
    nodes[1] = node(1, "DEPTHWISE_CONV_2D", [0], [2], NCHW)  # reads the input, not the start
    clusters = form_clusters(nodes, graph_outputs=[5])
    problems = [p for c in clusters for p in c.problems]
    assert [p.code for p in problems] == ["input"]


def test_an_incompatible_producer_is_named():
    nodes = chain(zeros=290)
    nodes[1] = node(1, "DEPTHWISE_CONV_2D", [1], [2], 0, problem="stride-2 SAME padding")
    clusters = form_clusters(nodes, graph_outputs=[5])
    problems = [p for c in clusters for p in c.problems]
    assert [(p.code, p.index) for p in problems] == [("op", 1)]
    assert "stride-2 SAME padding" in problems[0].message and "CONV_2D #2" in problems[0].message


def test_mean_feeding_a_cluster_op_is_inside_not_an_end():
    nodes = [
        node(0, "CONV_2D", [0], [1], NHWC2NCHW),
        node(1, "MEAN", [1], [2], NCHW | NCHW2NHWC),  # squeeze
        node(2, "CONV_2D", [2], [3], NCHW, params=90, zeros=80),  # excite
        node(3, "MUL", [1, 3], [4], NCHW),
        node(4, "MEAN", [4], [5], NCHW | NCHW2NHWC),
    ]
    (cluster,) = form_clusters(nodes, graph_outputs=[5])
    assert cluster.sparse and [n.index for n in cluster.ends] == [4]


def test_depth_to_space_ends_but_cannot_feed_a_cluster_op():
    ends = [
        node(0, "CONV_2D", [0], [1], NHWC2NCHW),
        node(1, "CONV_2D", [1], [2], NCHW, params=30, zeros=25),
        node(2, "DEPTH_TO_SPACE", [2], [3], NCHW2NHWC),
    ]
    (cluster,) = form_clusters(ends, graph_outputs=[3])
    assert cluster.sparse
    feeds = [*ends[:2], node(2, "DEPTH_TO_SPACE", [2], [3], NCHW2NHWC)]
    feeds.append(node(3, "CONV_2D", [3], [4], NCHW, params=30, zeros=25))
    feeds.append(node(4, "MEAN", [4], [5], NCHW | NCHW2NHWC))
    problems = [p for c in form_clusters(feeds, graph_outputs=[5]) for p in c.problems]
    assert any(p.index == 2 and "ends a sparse cluster" in p.message for p in problems)


def test_a_cluster_without_an_end_is_not_taken():
    nodes = [*chain(zeros=290)[:3], node(3, "RESHAPE", [3], [4], 0, problem="x")]
    (cluster,) = form_clusters(nodes, graph_outputs=[4])
    assert [p.code for p in cluster.problems] == ["no_end"] and not cluster.sparse


def test_padding_rules():
    assert rules.conv_padding(True, (3, 3), (1, 1), (1, 1)) == Padding(1, 1, 1, 1)
    assert rules.conv_padding(True, (5, 5), (1, 1), (1, 1)) == Padding(2, 2, 2, 2)
    assert rules.conv_padding(True, (3, 3), (2, 2), (1, 1)).tf_same  # kept as a flag
    assert rules.conv_padding(False, (3, 3), (2, 2), (1, 1)) == Padding()
    assert not rules.can_fold_pad(Padding(tf_same=True))
    ok = rules.depthwise_verdict((5, 5), (2, 2), (1, 1), Padding(2, 2, 2, 2), 1)
    assert ok.flags == NCHW
    uneven = rules.depthwise_verdict((3, 3), (2, 2), (1, 1), Padding(0, 1, 1, 0), 1, "PAD #3")
    assert uneven.flags == 0 and "PAD #3" in uneven.problem and "ZeroPadding2D(1)" in uneven.problem
    start = rules.conv2d_verdict((3, 3), (2, 2), (1, 1), Padding(1, 1, 1, 1), 1, 3)
    assert start.flags == NHWC2NCHW
    assert rules.conv2d_verdict((1, 1), (1, 1), (1, 1), Padding(), 1, 16).flags == NCHW
    assert rules.conv2d_verdict((1, 1), (1, 1), (1, 1), Padding(), 2, 8).flags == 0  # groups
    assert rules.binary_verdict("ADD", [4, 4], [None, (1, 1, 1, 8)]).flags == NCHW
    assert rules.binary_verdict("ADD", [4, 1], [None, (8,)]).flags == 0
    assert rules.binary_verdict("MUL", [4, 4], [None, (1, 2, 2, 8)]).flags == 0
    assert rules.mean_verdict(4, [2, 1]).flags == NCHW | NCHW2NHWC
    assert rules.mean_verdict(4, [-1]).flags == 0
