"""The bench's stages, one module each: its variants, the job that measures one, and its section of RESULTS.md."""
from bench.stages import bm25, cluster, embed, endpoint, extract, label, load, notebook2, ray_embed, search

# In the order they run; ray_embed, endpoint and bm25 only when named (--stages).
STAGES = {module.STAGE.name: module.STAGE
          for module in (embed, cluster, label, extract, search, load, notebook2, ray_embed, endpoint, bm25)}
DEFAULT_STAGES = ("embed", "cluster", "label", "extract", "search", "load", "notebook2")
