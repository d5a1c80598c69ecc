"""The shared definitions: the landmark scheme, AU sets and the training example."""
