"""A physics-based synthetic generator that writes the competition layout (see ../shared/DATA.md).

Scenes are sampled in `scene`, simulated and drawn with MuJoCo in `render`, and written as a data root
by `generate`; `python -m data.synth OUT ...` is the command line.
"""
