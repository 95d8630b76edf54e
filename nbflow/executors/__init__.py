"""Executors: where the attempts of a run go (a thread pool here, a Dask cluster), and the one
driver of an attempt they share."""
