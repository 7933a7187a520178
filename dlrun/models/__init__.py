"""Layer registry, Keras-faithful initialisation, the model builder and its summary."""
