"""Preprocessing steps fitted on training data only, and the pipeline that chains them."""
