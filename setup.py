# All metadata lives in pyproject.toml; this lets tools that still run setup.py build the app.
from setuptools import setup

setup()
