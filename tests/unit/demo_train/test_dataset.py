"""The demo dataset: seeded, captions say what the pictures show, held-out combinations never
appear, and the numpy evaluator reads rendered scenes correctly."""
from __future__ import annotations

import numpy as np

from lego_backend.demo_train.batches import make_batch
from lego_backend.demo_train.captions import POSITION_PHRASES, caption
from lego_backend.demo_train.evaluate import Accuracy, read_image
from lego_backend.demo_train.prompts import eval_prompts
from lego_backend.demo_train.render import render
from lego_backend.demo_train.scenes import (
    COLOURS,
    PALETTE,
    SHAPES,
    all_triples,
    held_out_triples,
    sample_scene,
)


def test_same_seed_same_scenes_captions_and_pixels() -> None:
    a = make_batch(np.random.default_rng(5), 24, held_out_triples())
    b = make_batch(np.random.default_rng(5), 24, held_out_triples())
    c = make_batch(np.random.default_rng(6), 24, held_out_triples())
    assert a.scenes == b.scenes and a.captions == b.captions
    assert np.array_equal(a.images.numpy(), b.images.numpy())
    assert a.captions != c.captions


def test_captions_state_exactly_the_scene_facts() -> None:
    rng = np.random.default_rng(0)
    for _ in range(400):
        scene = sample_scene(rng)
        text = caption(scene, rng)
        words = text.replace(",", "").split()
        assert (scene.background in words) == scene.say_background, text
        for shape in scene.shapes:
            assert shape.colour in words and shape.kind in words, text
            said = any(p in text for p in POSITION_PHRASES[shape.position])
            assert said == shape.say_position, text
        for size in ("small", "large"):  # as many size words as shapes that state theirs
            stated = sum(s.say_size and s.size == size for s in scene.shapes)
            assert words.count(size) == stated, text
        assert "medium" not in words
        # no colour, kind or position that the scene does not have
        colours = {s.colour for s in scene.shapes} | {scene.background}
        assert not (set(words) & set(COLOURS)) - colours, text
        assert not (set(words) & set(SHAPES)) - {s.kind for s in scene.shapes}, text


def test_two_shapes_in_opposite_places_with_their_colours() -> None:
    rng = np.random.default_rng(3)
    for scene in (sample_scene(rng, two_shapes=1.0) for _ in range(50)):
        a, b = scene.shapes
        assert {a.position, b.position} in ({"left", "right"}, {"top", "bottom"})
        img = render(scene).reshape(-1, 3)
        for colour in (a.colour, b.colour, scene.background):
            assert (img == PALETTE[colour]).all(axis=1).any(), colour


def test_held_out_combinations_never_appear_in_training_scenes() -> None:
    held = held_out_triples()
    assert len(held) == 28 and held <= set(all_triples())
    rng = np.random.default_rng(1)
    seen = {t for _ in range(3000) for t in sample_scene(rng, held).triples()}
    assert not seen & held
    # every held-out (colour, background) pair and (colour, kind) pair is still taught
    assert all(any(s[:2] == h[:2] for s in seen) for h in held)
    assert all(any((s[0], s[2]) == (h[0], h[2]) for s in seen) for h in held)


def test_evaluator_reads_rendered_scenes() -> None:
    rng = np.random.default_rng(2)
    acc = Accuracy()
    for _ in range(300):
        scene = sample_scene(rng, two_shapes=0.0)
        acc.add(scene, read_image(render(scene)), caption(scene, rng))
    assert acc.rates() == {"background": 1.0, "colour": 1.0, "kind": 1.0, "position": 1.0}, \
        acc.failures[:3]


def test_evaluator_says_so_when_there_is_no_shape() -> None:
    flat = np.zeros((64, 64, 3), dtype=np.uint8) + np.array(PALETTE["green"], dtype=np.uint8)
    reading = read_image(flat)
    assert reading.background == "green" and reading.colour is None
    assert reading.position is None


def test_evaluator_is_not_fooled_by_the_wrong_picture() -> None:
    """Reading prompt A's picture against prompt B's scene scores low: the metric can fail."""
    prompts = eval_prompts(40)
    acc = Accuracy()
    for (scene, _), (other, text) in zip(prompts, prompts[1:] + prompts[:1]):
        acc.add(other, read_image(render(scene)), text)
    rates = acc.rates()
    assert rates["position"] < 0.5 and rates["colour"] < 0.6


def test_eval_prompts_are_held_out_and_state_every_fact() -> None:
    held = held_out_triples()
    prompts = eval_prompts(100)
    assert len({text for _, text in prompts}) == 100
    for scene, text in prompts:
        assert set(scene.triples()) <= held
        shape = scene.shapes[0]
        assert shape.colour in text and scene.background in text and shape.kind in text
        assert any(p in text for p in POSITION_PHRASES[shape.position])
