"""Hyperparameter sweeps on Optuna: search spaces from YAML, trials that are normal runs."""
