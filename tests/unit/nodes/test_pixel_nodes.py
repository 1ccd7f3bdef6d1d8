"""ImagePadForOutpaint, ImageScaleToTotalPixels and Canny on small synthetic images."""
from __future__ import annotations

import torch

from node_library import build_registry
from node_library.canny import canny
from node_library.outpaint import PAD_VALUE, pad_for_outpaint, pad_mask
from node_library.upscale import scale_to_total_pixels, total_pixels_size
from tests.unit.nodes.fake_ctx import TensorCtx


def test_pad_grows_canvas_with_grey_and_masks_only_the_border() -> None:
    img = torch.rand(2, 10, 12, 3)
    out, mask = pad_for_outpaint(TensorCtx(), img, left=8, top=0, right=16, bottom=24,
                                 feathering=0).result
    assert out.shape == (2, 34, 36, 3) and mask.shape == (1, 34, 36)
    assert torch.equal(out[:, 0:10, 8:20], img)
    assert torch.all(out[:, 10:, :] == PAD_VALUE) and torch.all(out[:, :, :8] == PAD_VALUE)
    assert torch.all(mask[0, 0:10, 8:20] == 0)
    assert mask.sum() == 34 * 36 - 10 * 12


def test_feathering_fades_quadratically_towards_padded_sides_only() -> None:
    m = pad_mask(20, 20, left=8, top=0, right=0, bottom=0, feathering=4)
    inner = m[:, 8:]
    # column j of the original image is j pixels from the padded left side
    assert torch.allclose(inner[5, :5], torch.tensor([1.0, 0.5625, 0.25, 0.0625, 0.0]))
    # the unpadded top edge gets no fade: row 0 equals row 10 away from the left side
    assert torch.equal(inner[0, 4:], inner[10, 4:])
    assert torch.all(m[:, :8] == 1)


def test_feathering_wider_than_half_the_image_is_skipped() -> None:
    m = pad_mask(6, 6, left=8, top=8, right=8, bottom=8, feathering=4)
    assert torch.all(m[8:14, 8:14] == 0)


def test_scale_to_total_pixels_keeps_aspect_and_hits_the_budget() -> None:
    assert total_pixels_size(512, 512, 1.0) == (1024, 1024)
    w, h = total_pixels_size(800, 400, 0.25)
    assert abs(w / h - 2.0) < 0.01 and abs(w * h - 0.25 * 1024 * 1024) < 1024
    img = torch.rand(1, 64, 96, 3)
    (out,) = scale_to_total_pixels(TensorCtx(), img, "bilinear", 0.01).result
    assert out.shape == (1, 84, 125, 3) and out.min() >= 0 and out.max() <= 1


def test_canny_finds_the_outline_of_a_square() -> None:
    img = torch.zeros(1, 32, 32, 3)
    img[:, 8:24, 8:24] = 1.0
    (edges,) = canny(TensorCtx(), img, 0.4, 0.8).result
    assert edges.shape == (1, 32, 32, 3)
    e = edges[0, ..., 0]
    assert set(e.unique().tolist()) == {0.0, 1.0}
    assert e[16, 5:11].sum() >= 1 and e[5:11, 16].sum() >= 1  # left and top sides
    assert e[14:18, 14:18].sum() == 0 and e[0:3, 0:3].sum() == 0  # flat areas have none
    # edges are thin: at most two pixels across the left side
    assert e[16, :16].sum() <= 2


def test_specs_match_comfyui() -> None:
    reg = build_registry()
    pad = reg.get("ImagePadForOutpaint")
    assert [i.name for i in pad.inputs] == ["image", "left", "top", "right", "bottom",
                                            "feathering"]
    left, feather = pad.input("left"), pad.input("feathering")
    assert (left.default, left.min, left.max, left.step) == (0, 0, 16384, 8)
    assert (feather.default, feather.min, feather.max) == (40, 0, 16384)
    assert [o.type for o in pad.outputs] == ["IMAGE", "MASK"]
    mp = reg.get("ImageScaleToTotalPixels").input("megapixels")
    assert (mp.default, mp.min, mp.max, mp.step) == (1.0, 0.01, 16.0, 0.01)
    loader = reg.get("UpscaleModelLoader")
    assert loader.input("model_name").choices_from == "upscale_models"
    assert [o.type for o in loader.outputs] == ["UPSCALE_MODEL"]
    up = reg.get("ImageUpscaleWithModel")
    assert [i.type for i in up.inputs] == ["UPSCALE_MODEL", "IMAGE"]
    assert up.services == ("upscaler",)
    canny_spec = reg.get("Canny")
    assert canny_spec.input("low_threshold").default == 0.4
    assert canny_spec.input("high_threshold").default == 0.8
