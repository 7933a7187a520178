"""Evaluation protocols: how data is split, what is trained, and what is scored once."""
