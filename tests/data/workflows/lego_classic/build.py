"""Writes the LegoDiffusion classic-shape workflows (*.json next to this file).

    .venv/bin/python -m tests.data.workflows.lego_classic.build

Each function lays out one graph the way a user would in the editor, at ordinary SD1.5 sizes
(512 px, 20 steps) with ordinary model file names; the tests shrink them and point them at the
demo models (tests/integration/templates/classic_remap.py). The JSON files are committed; rerun
this after editing a graph. Titles, prompts and values are our own."""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.data.workflows.lego_classic.sketch import Canvas

HERE = Path(__file__).resolve().parent
CKPT = "sd15-base.safetensors"
CKPT_ALT = "sd15-painterly.safetensors"
NEG = "low quality, washed out, jpeg artefacts"
Node = dict[str, Any]


def _base(c: Canvas, positive: str, negative: str = NEG, *, size: tuple[int, int] = (512, 512),
          seed: int = 1234, steps: int = 20, cfg: float = 7.0) -> tuple[Node, Node, Node, Node]:
    """Checkpoint, two prompts, an empty latent and a sampler wired together (not decoded)."""
    ckpt = c.add("CheckpointLoaderSimple", [CKPT], at=(0, 1), title="Base model")
    pos = c.add("CLIPTextEncode", [positive], at=(1, 0), title="Prompt")
    neg = c.add("CLIPTextEncode", [negative], at=(1, 1), title="Avoid")
    latent = c.add("EmptyLatentImage", [size[0], size[1], 1], at=(1, 2), title="Canvas size")
    sampler = c.add("KSampler", [seed, "randomize", steps, cfg, "euler", "normal", 1.0],
                    at=(2, 1))
    c.wire(ckpt, 1, pos, "clip")
    c.wire(ckpt, 1, neg, "clip")
    c.wire(ckpt, 0, sampler, "model")
    c.wire(pos, 0, sampler, "positive")
    c.wire(neg, 0, sampler, "negative")
    c.wire(latent, 0, sampler, "latent_image")
    return ckpt, pos, neg, sampler


def _decode_save(c: Canvas, samples: Node, vae: Node, vae_slot: int, prefix: str,
                 at: tuple[float, float], preview: bool = False) -> Node:
    decode = c.add("VAEDecode", at=at)
    c.wire(samples, 0, decode, "samples")
    c.wire(vae, vae_slot, decode, "vae")
    out = (c.add("PreviewImage", at=(at[0] + 1, at[1])) if preview
           else c.add("SaveImage", [prefix], at=(at[0] + 1, at[1])))
    c.wire(decode, 0, out, "images")
    return decode


def default() -> Canvas:
    """Text to image, with a note, two groups, a primitive driving the seed and a VAE reroute."""
    c = Canvas()
    c.add("Note", ["Plain text-to-image: write a prompt, press Queue."], at=(0, 0),
          title="Read me")
    ckpt = c.add("CheckpointLoaderSimple", [CKPT], at=(0, 1), title="Base model")
    pos = c.add("CLIPTextEncode", ["a lighthouse on a cliff at dusk, warm light"], at=(1, 0))
    neg = c.add("CLIPTextEncode", [NEG], at=(1, 1))
    latent = c.add("EmptyLatentImage", [512, 512, 1], at=(1, 2))
    sampler = c.add("KSampler", [777, "fixed", 20, 7.5, "euler", "normal", 1.0], at=(2, 1),
                    widget_inputs=[("seed", "INT")])
    seed = c.primitive("INT", "seed", 20240611, at=(2, 0), title="Shared seed")
    c.wire(seed, 0, sampler, "seed")
    c.wire(ckpt, 1, pos, "clip")
    c.wire(ckpt, 1, neg, "clip")
    c.wire(ckpt, 0, sampler, "model")
    c.wire(pos, 0, sampler, "positive")
    c.wire(neg, 0, sampler, "negative")
    c.wire(latent, 0, sampler, "latent_image")
    vae = c.reroute("VAE", at=(2, 2))
    c.wire(ckpt, 2, vae, "")
    _decode_save(c, sampler, vae, 0, "lego_default", at=(3, 1))
    c.group("Prompt", 1, 0, 1, 2)
    c.group("Render", 2, 1, 3, 1, color="#8a5a3f")
    return c


def image2image() -> Canvas:
    """A photo, scaled to a pixel budget, encoded and re-sampled at 0.6 denoise."""
    c = Canvas()
    ckpt, _, _, sampler = _base(c, "the same scene as an oil painting, thick brush strokes")
    c.nodes.remove(next(n for n in c.nodes if n["type"] == "EmptyLatentImage"))
    sampler["widgets_values"][-1] = 0.6
    photo = c.add("LoadImage", ["street_photo.png", "image"], at=(0, 2), title="Source photo")
    budget = c.add("ImageScaleToTotalPixels", ["bicubic", 0.25], at=(1, 2))
    encode = c.add("VAEEncode", at=(1, 3))
    c.wire(photo, 0, budget, "image")
    c.wire(budget, 0, encode, "pixels")
    c.wire(ckpt, 2, encode, "vae")
    c.links = [ln for ln in c.links if ln[3] != sampler["id"] or ln[4] != 3]
    sampler["inputs"][3]["link"] = None
    c.wire(encode, 0, sampler, "latent_image")
    _decode_save(c, sampler, ckpt, 2, "lego_img2img", at=(3, 1))
    return c


def lora() -> Canvas:
    c = Canvas()
    ckpt, pos, neg, sampler = _base(c, "a knitted wool fox in a snowy forest", size=(512, 768))
    style = c.add("LoraLoader", ["knitted-style.safetensors", 0.9, 0.9], at=(0.5, 2),
                  title="Style LoRA")
    _rewire_through_loras(c, ckpt, [style], pos, neg, sampler)
    _decode_save(c, sampler, ckpt, 2, "lego_lora", at=(3, 1))
    return c


def lora_multiple() -> Canvas:
    """Two LoRAs in a chain plus a third one the user bypassed (mode 4)."""
    c = Canvas()
    ckpt, pos, neg, sampler = _base(c, "portrait of a clockwork owl, brass and glass",
                                    size=(512, 512))
    first = c.add("LoraLoader", ["brass-details.safetensors", 0.8, 1.0], at=(0.5, 2))
    second = c.add("LoraLoader", ["soft-lighting.safetensors", 0.5, 0.4], at=(0.5, 3))
    third = c.add("LoraLoader", ["heavy-grain.safetensors", 1.0, 1.0], at=(0.5, 4),
                  title="Film grain (off)", mode=4)
    _rewire_through_loras(c, ckpt, [first, second, third], pos, neg, sampler)
    _decode_save(c, sampler, ckpt, 2, "lego_loras", at=(3, 1))
    return c


def _rewire_through_loras(c: Canvas, ckpt: Node, loras: list[Node], pos: Node, neg: Node,
                          sampler: Node) -> None:
    """Replace the checkpoint -> sampler/prompt links by checkpoint -> LoRA chain -> them."""
    drop = {(ckpt["id"], 0), (ckpt["id"], 1)}
    kept = []
    for ln in c.links:
        if (ln[1], ln[2]) in drop:
            target = next(n for n in c.nodes if n["id"] == ln[3])
            target["inputs"][ln[4]]["link"] = None
        else:
            kept.append(ln)
    c.links = kept
    for out in ckpt["outputs"][:2]:
        out["links"] = []
    prev = ckpt
    for node in loras:
        c.wire(prev, 0, node, "model")
        c.wire(prev, 1, node, "clip")
        prev = node
    c.wire(prev, 0, sampler, "model")
    c.wire(prev, 1, pos, "clip")
    c.wire(prev, 1, neg, "clip")


def controlnet_example() -> Canvas:
    """Canny edges of a picture steer the sampler through ControlNetApplyAdvanced."""
    c = Canvas()
    ckpt, pos, neg, sampler = _base(c, "a glass greenhouse full of ferns, morning fog",
                                    size=(512, 512))
    _unwire_conditioning(c, sampler)
    picture = c.add("LoadImage", ["greenhouse_ref.png", "image"], at=(0, 3))
    edges = c.add("Canny", [0.3, 0.7], at=(1, 3), title="Edges")
    peek = c.add("PreviewImage", at=(2, 4), title="Edge preview")
    cn = c.add("ControlNetLoader", ["canny-sd15.safetensors"], at=(0, 4))
    apply = c.add("ControlNetApplyAdvanced", [0.85, 0.0, 0.9], at=(2, 3))
    c.wire(picture, 0, edges, "image")
    c.wire(edges, 0, peek, "images")
    c.wire(pos, 0, apply, "positive")
    c.wire(neg, 0, apply, "negative")
    c.wire(cn, 0, apply, "control_net")
    c.wire(edges, 0, apply, "image")
    c.wire(ckpt, 2, apply, "vae")
    c.wire(apply, 0, sampler, "positive")
    c.wire(apply, 1, sampler, "negative")
    _decode_save(c, sampler, ckpt, 2, "lego_canny", at=(3, 1))
    return c


def _unwire_conditioning(c: Canvas, sampler: Node) -> None:
    c.links = [ln for ln in c.links if not (ln[3] == sampler["id"] and ln[4] in (1, 2))]
    for i in (1, 2):
        sampler["inputs"][i]["link"] = None
    live = {ln[0] for ln in c.links}
    for node in c.nodes:
        for out in node["outputs"]:
            out["links"] = [x for x in out["links"] if x in live]


def depth_controlnet() -> Canvas:
    """A ready-made depth map goes straight into ControlNetApply (positive prompt only)."""
    c = Canvas()
    ckpt, pos, _, sampler = _base(c, "a cosy reading nook, bookshelves, lamp light",
                                  size=(512, 512))
    _unwire_conditioning(c, sampler)
    neg = next(n for n in c.nodes if n.get("title") == "Avoid")
    c.wire(neg, 0, sampler, "negative")
    depth = c.add("LoadImage", ["room_depth.png", "image"], at=(0, 3), title="Depth map")
    cn = c.add("ControlNetLoader", ["depth-sd15.safetensors"], at=(0, 4))
    apply = c.add("ControlNetApply", [0.7], at=(2, 3))
    c.wire(pos, 0, apply, "conditioning")
    c.wire(cn, 0, apply, "control_net")
    c.wire(depth, 0, apply, "image")
    c.wire(apply, 0, sampler, "positive")
    _decode_save(c, sampler, ckpt, 2, "lego_depth", at=(3, 1))
    return c


def mixing_controlnets() -> Canvas:
    """A pose ControlNet and an edge ControlNet applied one after the other."""
    c = Canvas()
    ckpt, pos, neg, sampler = _base(c, "a dancer on a rooftop, city lights behind",
                                    size=(512, 512))
    _unwire_conditioning(c, sampler)
    pose = c.add("LoadImage", ["dancer_pose.png", "image"], at=(0, 3), title="Pose")
    scene = c.add("LoadImage", ["rooftop_lines.png", "image"], at=(0, 4), title="Scene")
    edges = c.add("Canny", [0.35, 0.75], at=(1, 4))
    cn_pose = c.add("ControlNetLoader", ["openpose-sd15.safetensors"], at=(1, 3))
    cn_edges = c.add("ControlNetLoader", ["canny-sd15.safetensors"], at=(1, 5))
    first = c.add("ControlNetApplyAdvanced", [1.0, 0.0, 1.0], at=(2, 3), title="Pose control")
    second = c.add("ControlNetApplyAdvanced", [0.6, 0.1, 0.8], at=(2, 4), title="Edge control")
    c.wire(scene, 0, edges, "image")
    c.wire(pos, 0, first, "positive")
    c.wire(neg, 0, first, "negative")
    c.wire(cn_pose, 0, first, "control_net")
    c.wire(pose, 0, first, "image")
    c.wire(first, 0, second, "positive")
    c.wire(first, 1, second, "negative")
    c.wire(cn_edges, 0, second, "control_net")
    c.wire(edges, 0, second, "image")
    c.wire(second, 0, sampler, "positive")
    c.wire(second, 1, sampler, "negative")
    _decode_save(c, sampler, ckpt, 2, "lego_two_controls", at=(3, 1))
    return c


def _masked_sampler(c: Canvas, positive: str) -> tuple[Node, Node]:
    ckpt, _, _, sampler = _base(c, positive)
    c.nodes.remove(next(n for n in c.nodes if n["type"] == "EmptyLatentImage"))
    c.links = [ln for ln in c.links if not (ln[3] == sampler["id"] and ln[4] == 3)]
    sampler["inputs"][3]["link"] = None
    return ckpt, sampler


def inpaint_example() -> Canvas:
    """Repaint the transparent part of a picture (the mask is LoadImage's alpha)."""
    c = Canvas()
    ckpt, sampler = _masked_sampler(c, "a round stained-glass window")
    picture = c.add("LoadImage", ["wall_with_hole.png", "image"], at=(0, 3),
                    title="Picture with a hole")
    encode = c.add("VAEEncodeForInpaint", [4], at=(1, 3))
    c.wire(picture, 0, encode, "pixels")
    c.wire(ckpt, 2, encode, "vae")
    c.wire(picture, 1, encode, "mask")
    c.wire(encode, 0, sampler, "latent_image")
    _decode_save(c, sampler, ckpt, 2, "lego_inpaint", at=(3, 1))
    return c


def inpaint_model_outpainting() -> Canvas:
    """Extend a picture on three sides: pad, then inpaint the padding."""
    c = Canvas()
    ckpt, sampler = _masked_sampler(c, "a wide meadow continuing to the horizon")
    picture = c.add("LoadImage", ["meadow_crop.png", "image"], at=(0, 3), title="Picture")
    budget = c.add("ImageScaleToTotalPixels", ["area", 0.3], at=(1, 3))
    pad = c.add("ImagePadForOutpaint", [64, 0, 128, 64, 24], at=(1, 4), title="Grow canvas")
    encode = c.add("VAEEncodeForInpaint", [8], at=(2, 3))
    c.wire(picture, 0, budget, "image")
    c.wire(budget, 0, pad, "image")
    c.wire(pad, 0, encode, "pixels")
    c.wire(pad, 1, encode, "mask")
    c.wire(ckpt, 2, encode, "vae")
    c.wire(encode, 0, sampler, "latent_image")
    _decode_save(c, sampler, ckpt, 2, "lego_outpaint", at=(3, 1))
    return c


def esrgan_example() -> Canvas:
    """Generate, then enlarge the picture with an ESRGAN-family model; keep both."""
    c = Canvas()
    ckpt, _, _, sampler = _base(c, "macro photo of a beetle on a leaf, crisp detail")
    decode = _decode_save(c, sampler, ckpt, 2, "lego_small", at=(3, 1))
    up_model = c.add("UpscaleModelLoader", ["esrgan-4x.safetensors"], at=(3, 2))
    enlarge = c.add("ImageUpscaleWithModel", at=(4, 2))
    save = c.add("SaveImage", ["lego_enlarged"], at=(5, 2))
    c.wire(up_model, 0, enlarge, "upscale_model")
    c.wire(decode, 0, enlarge, "image")
    c.wire(enlarge, 0, save, "images")
    return c


def hiresfix_esrgan_workflow() -> Canvas:
    """Model upscale, scale back down to 2x, re-encode and refine; a muted full-size save."""
    c = Canvas()
    ckpt, pos, neg, sampler = _base(c, "a mountain village in spring, cherry blossoms")
    decode = _decode_save(c, sampler, ckpt, 2, "lego_first_pass", at=(3, 1), preview=True)
    up_model = c.add("UpscaleModelLoader", ["esrgan-4x.safetensors"], at=(3, 2))
    enlarge = c.add("ImageUpscaleWithModel", at=(4, 2))
    full = c.add("SaveImage", ["lego_4x_raw"], at=(5, 3), title="4x copy (muted)", mode=2)
    shrink = c.add("ImageScale", ["bilinear", 1024, 1024, "disabled"], at=(5, 2))
    encode = c.add("VAEEncode", at=(6, 2))
    refine = c.add("KSampler", [1234, "fixed", 14, 7.0, "euler", "normal", 0.45], at=(7, 2),
                   title="Refine")
    c.wire(up_model, 0, enlarge, "upscale_model")
    c.wire(decode, 0, enlarge, "image")
    c.wire(enlarge, 0, full, "images")
    c.wire(enlarge, 0, shrink, "image")
    c.wire(shrink, 0, encode, "pixels")
    c.wire(ckpt, 2, encode, "vae")
    c.wire(ckpt, 0, refine, "model")
    c.wire(pos, 0, refine, "positive")
    c.wire(neg, 0, refine, "negative")
    c.wire(encode, 0, refine, "latent_image")
    _decode_save(c, refine, ckpt, 2, "lego_hires_esrgan", at=(8, 2))
    return c


HIRES_SUBGRAPH = "5b0d4a9e-7c1f-4e58-9a36-2f4c8d61b0e7"


def _hires_pass_definition() -> dict[str, Any]:
    """Subgraph "Hires pass": upscale the latent 1.5x and sample it again; its denoise is a
    subgraph input that feeds the inner sampler's widget."""
    inner = Canvas(link_base=100)
    grow = inner.add("LatentUpscaleBy", ["nearest-exact", 1.5], at=(0, 0))
    again = inner.add("KSampler", [99, "fixed", 12, 7.0, "euler", "normal", 0.5], at=(1, 0),
                      widget_inputs=[("denoise", "FLOAT")], title="Second pass")
    inner.boundary_in("model", "MODEL", [(again, "model")])
    inner.boundary_in("positive", "CONDITIONING", [(again, "positive")])
    inner.boundary_in("negative", "CONDITIONING", [(again, "negative")])
    inner.boundary_in("samples", "LATENT", [(grow, "samples")])
    inner.boundary_in("denoise", "FLOAT", [(again, "denoise")])
    inner.wire(grow, 0, again, "latent_image")
    inner.boundary_out("LATENT", again, 0)
    return inner.definition(HIRES_SUBGRAPH, "Hires pass")


def hiresfix_latent_workflow() -> Canvas:
    """First pass, then the "Hires pass" subgraph; a primitive sets its denoise."""
    c = Canvas()
    ckpt, pos, neg, sampler = _base(c, "an old tram crossing a bridge in the rain")
    _decode_save(c, sampler, ckpt, 2, "lego_low_res", at=(3, 0), preview=True)
    hires = c.subgraph_node(_hires_pass_definition(), at=(3, 1), title="Hires pass")
    strength = c.primitive("FLOAT", "denoise", 0.55, at=(2, 3), title="Hires denoise")
    c.wire(ckpt, 0, hires, "model")
    c.wire(pos, 0, hires, "positive")
    c.wire(neg, 0, hires, "negative")
    c.wire(sampler, 0, hires, "samples")
    c.wire(strength, 0, hires, "denoise")
    _decode_save(c, hires, ckpt, 2, "lego_hires_latent", at=(4, 1))
    c.group("Hires fix", 3, 1, 3, 1, color="#3f8a5a")
    return c


def latent_upscale_different_prompt_model() -> Canvas:
    """Upscale the latent and finish it with another checkpoint and another prompt."""
    c = Canvas()
    ckpt, _, _, sampler = _base(c, "a fox sitting in tall grass, photo")
    _decode_save(c, sampler, ckpt, 2, "lego_photo_pass", at=(3, 0), preview=True)
    other = c.add("CheckpointLoaderSimple", [CKPT_ALT], at=(3, 2), title="Second model")
    pos2 = c.add("CLIPTextEncode", ["a fox sitting in tall grass, watercolour"], at=(4, 2))
    neg2 = c.add("CLIPTextEncode", [NEG], at=(4, 3))
    grow = c.add("LatentUpscale", ["nearest-exact", 768, 768, "disabled"], at=(3, 1))
    finish = c.add("KSampler", [4321, "fixed", 15, 8.0, "euler", "normal", 0.6], at=(5, 1))
    c.wire(sampler, 0, grow, "samples")
    c.wire(other, 1, pos2, "clip")
    c.wire(other, 1, neg2, "clip")
    c.wire(other, 0, finish, "model")
    c.wire(pos2, 0, finish, "positive")
    c.wire(neg2, 0, finish, "negative")
    c.wire(grow, 0, finish, "latent_image")
    _decode_save(c, finish, other, 2, "lego_watercolour", at=(6, 1))
    return c


def area_composition() -> Canvas:
    """Three prompts, each on its own part of a wide canvas, combined; then a 1.5x pass."""
    c = Canvas()
    ckpt, pos, neg, sampler = _base(c, "a calm lake landscape, soft daylight",
                                    size=(768, 512))
    _unwire_conditioning(c, sampler)
    c.wire(neg, 0, sampler, "negative")
    combined = pos
    for i, (text, x) in enumerate([("a red barn", 0), ("a white windmill", 256),
                                   ("a flock of birds", 512)]):
        enc = c.add("CLIPTextEncode", [text], at=(0.5 + i, 3))
        area = c.add("ConditioningSetArea", [256, 512, x, 0, 0.8], at=(0.5 + i, 4))
        both = c.add("ConditioningCombine", at=(0.5 + i, 5))
        c.wire(ckpt, 1, enc, "clip")
        c.wire(enc, 0, area, "conditioning")
        c.wire(combined, 0, both, "conditioning_1")
        c.wire(area, 0, both, "conditioning_2")
        combined = both
    c.wire(combined, 0, sampler, "positive")
    _decode_save(c, sampler, ckpt, 2, "lego_areas", at=(3, 1), preview=True)
    grow = c.add("LatentUpscaleBy", ["bilinear", 1.5], at=(3, 2))
    again = c.add("KSampler", [55, "fixed", 12, 7.0, "euler", "normal", 0.5], at=(4, 2))
    c.wire(sampler, 0, grow, "samples")
    c.wire(ckpt, 0, again, "model")
    c.wire(combined, 0, again, "positive")
    c.wire(neg, 0, again, "negative")
    c.wire(grow, 0, again, "latent_image")
    _decode_save(c, again, ckpt, 2, "lego_areas_hires", at=(5, 2))
    return c


def embedding_example() -> Canvas:
    """A textual-inversion embedding named in the prompt, and CLIP skip 2."""
    c = Canvas()
    ckpt, pos, neg, sampler = _base(
        c, "a teapot shaped like a snail, embedding:lego-teapot-style, studio light",
        size=(512, 512))
    skip = c.add("CLIPSetLastLayer", [-2], at=(0.5, 2), title="CLIP skip")
    c.links = [ln for ln in c.links if not (ln[1] == ckpt["id"] and ln[2] == 1)]
    ckpt["outputs"][1]["links"] = []
    c.wire(ckpt, 1, skip, "clip")
    c.wire(skip, 0, pos, "clip")
    c.wire(skip, 0, neg, "clip")
    _decode_save(c, sampler, ckpt, 2, "lego_embedding", at=(3, 1))
    return c


def two_pass_pose() -> Canvas:
    """Pose-guided first pass, latent upscale, pose-guided second pass (KSamplerAdvanced)."""
    c = Canvas()
    ckpt, pos, neg, sampler = _base(c, "a knight kneeling in a cathedral, light rays",
                                    size=(512, 512))
    _unwire_conditioning(c, sampler)
    c.wire(neg, 0, sampler, "negative")
    pose = c.add("LoadImage", ["kneeling_pose.png", "image"], at=(0, 3), title="Pose")
    cn = c.add("ControlNetLoader", ["openpose-sd15.safetensors"], at=(0, 4))
    guided = c.add("ControlNetApply", [1.0], at=(1, 3))
    c.wire(pos, 0, guided, "conditioning")
    c.wire(cn, 0, guided, "control_net")
    c.wire(pose, 0, guided, "image")
    c.wire(guided, 0, sampler, "positive")
    _decode_save(c, sampler, ckpt, 2, "lego_pose_pass1", at=(3, 0))
    grow = c.add("LatentUpscale", ["nearest-exact", 768, 768, "disabled"], at=(3, 2))
    guided2 = c.add("ControlNetApply", [0.6], at=(3, 3), title="Lighter pose control")
    second = c.add("KSamplerAdvanced",
                   ["enable", 8080, "randomize", 20, 7.0, "euler", "normal", 8, 10000,
                    "disable"], at=(4, 2))
    c.wire(sampler, 0, grow, "samples")
    c.wire(pos, 0, guided2, "conditioning")
    c.wire(cn, 0, guided2, "control_net")
    c.wire(pose, 0, guided2, "image")
    c.wire(ckpt, 0, second, "model")
    c.wire(guided2, 0, second, "positive")
    c.wire(neg, 0, second, "negative")
    c.wire(grow, 0, second, "latent_image")
    _decode_save(c, second, ckpt, 2, "lego_pose_pass2", at=(5, 2))
    return c


WORKFLOWS: dict[str, Callable[[], Canvas]] = {
    "default": default, "image2image": image2image, "lora": lora,
    "lora_multiple": lora_multiple, "controlnet_example": controlnet_example,
    "depth_controlnet": depth_controlnet, "mixing_controlnets": mixing_controlnets,
    "inpaint_example": inpaint_example, "inpaint_model_outpainting": inpaint_model_outpainting,
    "esrgan_example": esrgan_example, "hiresfix_esrgan_workflow": hiresfix_esrgan_workflow,
    "hiresfix_latent_workflow": hiresfix_latent_workflow,
    "latent_upscale_different_prompt_model": latent_upscale_different_prompt_model,
    "area_composition": area_composition, "embedding_example": embedding_example,
    "2_pass_pose": two_pass_pose,
}


def main() -> None:
    for name, make in WORKFLOWS.items():
        canvas = make()
        subgraphs = []
        for node in canvas.nodes:
            if node["type"] == HIRES_SUBGRAPH:
                subgraphs.append(_hires_pass_definition())
        ident = str(uuid.uuid5(uuid.NAMESPACE_URL, f"legodiffusion/lego_classic/{name}"))
        text = json.dumps(canvas.save(ident, subgraphs), indent=1) + "\n"
        (HERE / f"{name}.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
