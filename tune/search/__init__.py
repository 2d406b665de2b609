"""The search, the only code that imports Ray: spaces (`spaces`), the trainable (`trainable`), the
Optuna searcher (`searcher`), a stage's experiment (`stages`), the study driver (`driver`), results to
Parquet (`results`), the best model's evaluation (`evaluate`) and the command line (`cli`,
`python -m tune.search`)."""
