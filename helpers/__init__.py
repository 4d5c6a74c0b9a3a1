"""LLM4SciSci helpers: the plumbing the three course notebooks share.

One module per idea: ``data`` (corpus), ``models`` (loading), ``embeddings``, ``clustering``, ``labels``,
``generation`` (with ``prompts`` and ``endpoint``), ``pdfs``, ``extraction``, ``retrieval``, ``checks``, ``cache``.
Import what you need, e.g. ``from helpers.data import load_corpus``.
"""

# The repository's public address, used by the Colab set-up cells and badges.
# Change it everywhere at once with `make set-repo-url URL=https://github.com/OWNER/NAME`.
REPO_URL = "https://github.com/llm4scisci/LLM4SciSci"
