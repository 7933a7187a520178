"""Dataset registry and loaders: bundled, file-based and synthetic data."""
