"""Run directories and everything written into them."""
