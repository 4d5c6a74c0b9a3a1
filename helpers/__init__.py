"""LLM4SciSci helpers: the plumbing the three course notebooks share.

One module per idea. The corpus: ``data``, ``formats``, ``openalex``, ``text``. Models: ``hub`` (no torch),
``models``, ``onnx_backend``. The stages: ``embeddings``, ``clustering``, ``labels``, ``llm_labels``,
``trends``, ``prompts``, ``generation``, ``endpoint``, ``pdfs``, ``extraction``, ``retrieval``. Checking
and plumbing: ``evaluation``, ``reference``, ``plots``, ``checks``, ``cache``; ``field`` is a command.
Import what you need, e.g. ``from helpers.data import load_corpus``.
"""

# The repository's public address, used by the Colab set-up cells and badges.
# Change it everywhere at once with `make set-repo-url URL=https://github.com/OWNER/NAME`.
REPO_URL = "https://github.com/llm4scisci/LLM4SciSci"
