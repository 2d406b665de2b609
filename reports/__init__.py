"""Parquet in, HTML out: pure functions from DataFrames to plotly figures, one page builder."""
