"""Shared test set-up."""
# Before any test module imports TensorFlow: jaa_keras sets the environment it must start with
# (oneDNN kernels for the grouped convolutions' gradients on every CPU).
import jaa_keras  # noqa: F401
