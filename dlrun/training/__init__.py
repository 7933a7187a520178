"""Losses, optimizers, metrics, callbacks and the training loop."""
