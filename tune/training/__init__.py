"""Training without Ray: run configs, one object per task, losses, the trainer, checkpoints, inference
and pseudo-labels. The search layer (tune.search) drives this from Ray Tune; `python -m tune.train`
runs it directly."""
