"""Parquet and the Optuna journal in, HTML out: the results schema (schema.py), pure functions from
DataFrames to plotly figures, one page builder."""
