"""Load a model and capture one run of it into a `Trace`: the transformers path, forward hooks for any
torch module, streamed capture of long inputs, images, generation, arrays from any framework, and
the memory guard that chooses between them. Nothing here analyses or draws.
"""

from __future__ import annotations

from .arrays import trace_from_arrays
from .dispatch import capture
from .load import LoadedModel, load_model

__all__ = ["LoadedModel", "capture", "load_model", "trace_from_arrays"]
