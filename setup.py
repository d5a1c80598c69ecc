# Beam stages the package onto Dataflow workers through a setup.py; the metadata lives in setup.cfg.
from setuptools import setup

setup()
