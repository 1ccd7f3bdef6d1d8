"""TensorHandle: names a tensor without carrying its bytes. Steps and service calls pass handles;
the data plane resolves them where the bytes live."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TensorHandle:
    id: str  # unique within the store that minted it
    shape: tuple[int, ...]
    dtype: str  # torch dtype name, e.g. "float32"
    device: str  # "cpu", "cuda:0", ...
    owner: str  # store/transport that holds the bytes ("inproc", "shm:<host>", "ray")

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n
