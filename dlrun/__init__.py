"""dlrun: YAML-described deep-learning experiments, trained, evaluated and reported."""

__version__ = "0.1.0"
