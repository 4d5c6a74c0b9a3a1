"""The repository's tools, run as modules from the clone: ``python -m tools.run_notebooks``, ``python -m tools.colab_check``."""
