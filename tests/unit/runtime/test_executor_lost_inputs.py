"""The executor's recovery from inputs lost with a cluster node, without Ray: a producer whose
outputs are remote handles (TensorStore.put_remote) that fail to resolve as if their node had
died; the consumer must see the producer re-run and then succeed, with one execution_success."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from lego_backend.dataplane.store import TensorStore
from lego_backend.dataplane.transport import InputLostError
from lego_backend.graph.graph import Link
from lego_backend.graph.plan import ExecutionPlan, Step
from lego_backend.runtime import events as ev
from lego_backend.runtime.context import Paths, RunContext
from lego_backend.runtime.executor import execute
from lego_backend.runtime.output_cache import OutputCache
from lego_backend.runtime.records import PromptRecord
from node_library.spec import NodeOutput, NodeSpec


@dataclass(frozen=True)
class Source:
    object_id: str
    node: str


def _spec(name: str, run) -> NodeSpec:
    return NodeSpec(name, name, "test", (), (), run)


def _plan(produce, consume) -> ExecutionPlan:
    steps = {
        "1": Step("1", "Produce", _spec("Produce", produce), {}, {}, "service"),
        "2": Step("2", "Consume", _spec("Consume", consume), {}, {"x": Link("1", 0)}, "local"),
    }
    return ExecutionPlan({}, steps, ["2"])


def _run(plan: ExecutionPlan) -> tuple[PromptRecord, list[ev.Event]]:
    store = TensorStore()
    events: list[ev.Event] = []
    ctx = RunContext(Paths(Path("."), Path("."), Path("."), None), store, None, events.append,
                     threading.Event(), "p1", "c1", {}, None)
    record = PromptRecord("p1", 1, {}, {"client_id": "c1"}, ["2"])
    execute(record, plan, ctx, OutputCache(store))
    return record, events


def _producer(lose_first: int):
    """Each run yields a remote handle on node 'B'; the first `lose_first` ones are lost."""
    runs: list[int] = []

    def produce(ctx):
        runs.append(len(runs))
        n = len(runs)
        source = Source(f"obj{n}", "B")

        def resolve() -> torch.Tensor:
            if n <= lose_first:
                raise InputLostError(f"obj{n} lost with node B", frozenset({source.object_id}),
                                     frozenset({"B"}))
            return torch.full((2,), float(n))
        return NodeOutput((ctx.store.put_remote(source, resolve, (2,), "float32", "cpu",
                                                owner="test"),))
    return produce, runs


def _consumer():
    seen: list[float] = []

    def consume(ctx, x):
        seen.append(float(ctx.tensor(x)[0]))
        return NodeOutput((), {"value": [seen[-1]]})
    return consume, seen


def test_a_lost_input_reruns_its_producer_and_the_prompt_succeeds_once():
    produce, runs = _producer(lose_first=1)
    consume, seen = _consumer()
    record, events = _run(_plan(produce, consume))
    assert record.status == "success"
    assert len(runs) == 2 and seen == [2.0]  # re-produced, then consumed the new value
    assert sum(isinstance(e, ev.ExecutionSuccess) for e in events) == 1
    assert [e.node for e in events if isinstance(e, ev.Executed)] == ["2"]
    assert [e.node for e in events if isinstance(e, ev.Executing)] == ["1", "2"]  # no repeats


def test_recovery_is_bounded_and_then_fails_with_the_loss_named():
    produce, runs = _producer(lose_first=100)
    consume, _ = _consumer()
    record, events = _run(_plan(produce, consume))
    assert record.status == "error"
    err = next(e for e in events if isinstance(e, ev.ExecutionError))
    assert err.node_id == "2" and "lost with node B" in err.exception_message
    assert len(runs) == 4  # the first run and three recoveries
