"""Where a new replica actor goes, and what a service kind declares (pure policy)."""
from __future__ import annotations

import pytest

from lego_backend.cluster.placement import (
    ActorResources,
    NodeView,
    choose_node,
    parse_resources,
)

GIB = 1 << 30
DEN = ("denoiser", "abc")


def node(nid: str, **kw) -> NodeView:
    capacity = {"CPU": 4.0, "memory": 16.0 * GIB, **kw.pop("capacity", {})}
    return NodeView(nid, kw.pop("alive", True), capacity, **kw)


def test_only_nodes_with_the_declared_resources_qualify():
    nodes = [node("a", capacity={"GPU": 0.0}), node("b", capacity={"GPU": 2.0})]
    assert choose_node(nodes, {"GPU": 1.0}, DEN, "/m/x.safetensors") == "b"
    assert choose_node(nodes, {"GPU": 4.0}, DEN, "/m/x.safetensors") is None
    assert choose_node(nodes, {"node_b": 0.01}, DEN, "/m/x.safetensors") is None


def test_dead_nodes_are_never_chosen():
    nodes = [node("a", alive=False, capacity={"memory": 64.0 * GIB}), node("b")]
    assert choose_node(nodes, {}, DEN, "/m/x.safetensors") == "b"


def test_replicas_of_one_service_spread_over_nodes():
    nodes = [node("a", services=frozenset({DEN})), node("b", resident_bytes=4 * GIB)]
    assert choose_node(nodes, {}, DEN, "/m/x.safetensors") == "b"


def test_a_node_holding_weights_of_the_same_file_wins_over_free_memory():
    nodes = [node("a", capacity={"memory": 64.0 * GIB}),
             node("b", weight_files=frozenset({"/m/x.safetensors"}), resident_bytes=GIB)]
    assert choose_node(nodes, {}, DEN, "/m/x.safetensors") == "b"


def test_then_most_free_memory_then_shortest_queue():
    nodes = [node("a", resident_bytes=8 * GIB), node("b", reserved_memory=2 * GIB, queue=5),
             node("c", reserved_memory=2 * GIB, queue=0)]
    assert choose_node(nodes, {}, DEN, "/m/x.safetensors") == "c"


def test_parse_resources_standard_and_custom():
    kind, res = parse_resources("denoiser=num_gpus=1,num_cpus=2,memory=4GiB,node_b=0.01")
    assert kind == "denoiser"
    assert res == ActorResources(2.0, 1.0, 4 * GIB, (("node_b", 0.01),))
    assert res.demand() == {"CPU": 2.0, "GPU": 1.0, "memory": 4.0 * GIB, "node_b": 0.01}
    assert res.options() == {"num_cpus": 2.0, "num_gpus": 1.0, "memory": 4 * GIB,
                             "resources": {"node_b": 0.01}}
    assert ActorResources().demand() == {}


@pytest.mark.parametrize("text", ["denoiser", "denoiser=", "denoiser=gpu", "=num_gpus=1",
                                  "vae=num_cpus=x", "vae=num_cpus=-1"])
def test_parse_resources_refuses_malformed_specs(text):
    with pytest.raises(ValueError):
        parse_resources(text)


def test_a_preferred_resource_wins_while_its_node_lives_and_is_dropped_when_it_dies():
    nodes = [node("a", capacity={"memory": 64.0 * GIB}), node("b", capacity={"node_b": 1.0})]
    assert choose_node(nodes, {}, DEN, "/m/x.safetensors", prefer=("node_b",)) == "b"
    assert choose_node(nodes, {}, DEN, "/m/x.safetensors") == "a"  # most free memory
    gone = [nodes[0], node("b", alive=False, capacity={"node_b": 1.0})]
    assert choose_node(gone, {}, DEN, "/m/x.safetensors", prefer=("node_b",)) == "a"


def test_parse_resources_prefer_is_soft_and_named():
    kind, res = parse_resources("text_encoder=prefer=node_b,num_cpus=1")
    assert kind == "text_encoder" and res.prefer == ("node_b",)
    assert res.demand() == {"CPU": 1.0}  # not a hard demand Ray would enforce
    with pytest.raises(ValueError, match="prefer needs a resource name"):
        parse_resources("vae=prefer=")
