"""Weights: the bundle format (bundle.py), the official checkpoints and their conversion (official.py, convert.py),
where the official files come from (sources.py, download.py) and stand-in random weights (standin.py)."""
