"""Everything Ray and Optuna: search spaces, trainables, stages, the search CLI, results to Parquet."""
