"""While a step call over the direct channel has no reply, the replica asks Ray whether its actor
still lives (a node that died without closing the socket never says so itself): one probe at a
time, and Ray's verdict -- the actor is gone -- ends the wait with Ray's error. No Ray needed:
the replica's Ray module and actor handle are stand-ins."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from lego_backend.cluster.ray_replica import RayReplica


class ActorGone(Exception):
    pass


def _replica(answer: dict) -> tuple[RayReplica, list[object]]:
    probes: list[object] = []

    def where_remote() -> object:
        probes.append(object())
        return probes[-1]

    def wait(refs, timeout):
        assert timeout == 0  # never blocks the step's wait
        return (refs, []) if answer["ready"] else ([], refs)

    def get(ref):
        if answer["dead"]:
            raise ActorGone("the actor's node was declared dead")
        return {"node": "n"}

    replica = RayReplica.__new__(RayReplica)  # no cluster, no actor: just the probe logic
    replica._probe = None
    replica._actor = SimpleNamespace(where=SimpleNamespace(remote=where_remote))
    replica._ray = SimpleNamespace(wait=wait, get=get)
    return replica, probes


def test_a_silent_actor_is_probed_once_until_ray_answers():
    answer = {"ready": False, "dead": False}
    replica, probes = _replica(answer)
    for _ in range(3):
        replica._check_alive()
    assert len(probes) == 1  # one question in flight, not one per poll
    answer["ready"] = True
    replica._check_alive()  # alive: the wait goes on, a new probe next time
    replica._check_alive()
    assert len(probes) == 2


def test_ray_saying_the_actor_is_gone_ends_the_wait():
    answer = {"ready": False, "dead": True}
    replica, _ = _replica(answer)
    replica._check_alive()
    replica._check_alive()  # no answer yet: keep waiting
    answer["ready"] = True
    with pytest.raises(ActorGone):
        replica._check_alive()
