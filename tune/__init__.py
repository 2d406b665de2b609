"""Training and search, in two layers: `tune.training` trains one run with no Ray (configs, tasks,
trainer, checkpoints, inference, pseudo-labels); `tune.search` is the only code that imports Ray (spaces,
the trainable, stages, the driver, results). `tune.train` and `tune.predict` are the command lines of the
first, `python -m tune.search` that of the second."""
