"""A denoiser batch may mix rows with and without ControlNet residuals (rows without get zero
residuals) and rows with different LoRAs: each row's output is what a forward of its own gives."""
from __future__ import annotations

import torch

from lego_backend.dataplane.store import TensorStore
from lego_backend.services.denoiser import DenoiserService
from lego_backend.services.protocol import AdapterRef, ServiceCall, ServiceSpec
from tests.integration.engine.helpers import CKPT


def _call(store: TensorStore, seed: int, residuals: list[torch.Tensor] | None) -> ServiceCall:
    g = torch.Generator().manual_seed(seed)
    args = {"x": store.put(torch.randn(2, 4, 8, 8, generator=g)),
            "t": store.put(torch.tensor([500.0, 500.0])),
            "context": store.put(torch.randn(2, 77, 32, generator=g))}
    if residuals is not None:
        args["down"] = [store.put(r) for r in residuals[:-1]]
        args["mid"] = store.put(residuals[-1])
    return ServiceCall("unet", args)


def test_rows_with_and_without_controlnet_share_a_forward_exactly(demo_models):
    store = TensorStore()
    spec = ServiceSpec("denoiser", "demo", demo_models / "checkpoints" / CKPT)
    service = DenoiserService(spec, store)
    # residual shapes of the demo UNet at 64 px: read them off a plain forward's down blocks
    service.run_batch([_call(store, 0, None)])
    shapes = []
    hooks = [b.register_forward_hook(lambda m, a, out: shapes.append(
        [o.shape for o in out[1]])) for b in service.model.down_blocks]
    service.run_batch([_call(store, 0, None)])
    for h in hooks:
        h.remove()
    down = [torch.randn(s, generator=torch.Generator().manual_seed(7)) for group in shapes
            for s in group]
    # the conv_in output is the first residual in diffusers' list
    down = [torch.randn(2, 32, 8, 8, generator=torch.Generator().manual_seed(8)), *down]
    mid = torch.randn(2, 64, 4, 4, generator=torch.Generator().manual_seed(9))

    plain, controlled = _call(store, 1, None), _call(store, 2, [*down, mid])
    alone = [store.get(service.run_batch([c])[0]) for c in (plain, controlled)]
    together = [store.get(h) for h in service.run_batch([plain, controlled])]
    assert torch.allclose(together[0], alone[0], atol=1e-5)  # zero residuals change nothing
    assert torch.allclose(together[1], alone[1], atol=1e-5)
    # and the residuals really reached the controlled rows
    assert not torch.allclose(alone[1], store.get(service.run_batch([_call(store, 2, None)])[0]))


def _lora_call(store: TensorStore, seed: int, adapters: tuple[AdapterRef, ...]) -> ServiceCall:
    call = _call(store, seed, None)
    call.args["adapters"] = adapters
    return call


def test_lora_rows_in_any_batch_order_match_their_own_forward(demo_models):
    """The denoiser regroups a batch's rows by LoRA before the forward: every call must still
    get its own rows back, with its own LoRAs, as a forward of its own gives them."""
    store = TensorStore()
    spec = ServiceSpec("denoiser", "demo", demo_models / "checkpoints" / CKPT)
    service = DenoiserService(spec, store)
    loras = demo_models / "loras"
    a = AdapterRef("lora-a", loras / "lego-demo-lora.safetensors", 1.0)
    b = AdapterRef("lora-b", loras / "lego-demo-lora-peft.safetensors", 0.5)
    for ref in (a, b):
        service.adapters.request(ref).result()
    stacks: list[tuple[AdapterRef, ...]] = [(), (a,), (b,), (a,), (), (a, b)]
    calls = [_lora_call(store, 20 + i, s) for i, s in enumerate(stacks)]
    alone = [store.get(service.run_batch([c])[0]) for c in calls]
    together = [store.get(h) for h in service.run_batch(calls)]
    for got, want in zip(together, alone):
        assert torch.allclose(got, want, atol=1e-5)
    # and the LoRAs really reached their rows (the same inputs without them differ)
    for i in (1, 2, 5):
        plain = store.get(service.run_batch([_lora_call(store, 20 + i, ())])[0])
        assert not torch.allclose(alone[i], plain, atol=1e-4)
