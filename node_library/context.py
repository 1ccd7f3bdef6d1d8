"""What a node's run function may use. Nodes reach models only through `call` (a model service
named by a ServiceSpec) and exchange tensors as handles (`put` / `tensor`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from lego_backend.dataplane.handle import TensorHandle


class NodeContext(Protocol):
    prompt_id: str
    node_id: str
    prompt: dict[str, Any]  # the API prompt (PNG metadata)
    extra_pnginfo: dict[str, Any] | None  # e.g. {"workflow": {...}} from the editor
    output_dir: Path
    input_dir: Path
    temp_dir: Path
    models: Any  # ModelStore: resolve(folder, name), identity(path), list(folder)

    def call(self, spec: Any, op: str, **args: Any) -> Any:
        """Run an operation on the model service for `spec` (blocks until done)."""

    def prefetch_adapters(self, spec: Any, refs: tuple[Any, ...]) -> list[Any]:
        """Start loading LoRAs on the service that will apply them; returns futures."""

    def stream(self, spec: Any, adapters: tuple[Any, ...] = ()) -> Any:
        """Context manager: this node will call `spec` at every step (lets batches form)."""

    def put(self, tensor: Any) -> TensorHandle: ...

    def tensor(self, handle: TensorHandle) -> Any: ...

    def release(self, handle: TensorHandle) -> None:
        """Drop a scratch tensor this node put and no longer needs."""

    def progress(self, value: int, total: int, preview: Any = None) -> None:
        """Report step progress; `preview` is an optional latent [B,C,h,w] to render."""

    def check_interrupt(self) -> None:
        """Raise PromptCancelled if the prompt was interrupted."""
