"""Training the shipped demo model ("lego-demo-shapes"): a tiny SD1.5-architecture checkpoint
that draws coloured shapes on coloured backgrounds from text, trained offline on a procedural
dataset the project generates itself (scenes.py, captions.py, render.py), evaluated by a
pure-numpy reader of the generated images (evaluate.py)."""
