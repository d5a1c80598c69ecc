"""Speed and memory measurements (python -m benchmarks.<name>); their figures are in BENCHMARKS.md."""
# Before any benchmark imports TensorFlow: jaa_keras sets the environment TensorFlow must start with
# (oneDNN kernels, without which grouped convolutions have no CPU gradient on some machines).
import jaa_keras  # noqa: F401
