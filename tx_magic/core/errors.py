"""Errors tx_magic raises for bad input: short messages that say what to do.

The magic shows them as one line (no traceback); the API raises them as they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class TxMagicError(Exception):
    """Base of every error tx_magic raises on purpose for bad input."""


class EmptyTextError(TxMagicError, ValueError):
    """The text to explain is empty or only whitespace."""


class ModelLoadError(TxMagicError):
    """A model could not be found or loaded."""


class NoAttentionError(TxMagicError):
    """The model gave no attention weights."""


class MissingTargetError(TxMagicError, ValueError):
    """An encoder-decoder model was given no target text."""


class ShapeError(TxMagicError, ValueError):
    """Attention or tokens of the wrong shape (e.g. given to `show`)."""


class OptionError(TxMagicError, ValueError):
    """An option out of range or unknown (a layer, a head, a kind, max_tokens, a magic flag)."""


class BadTextError(TxMagicError, ValueError):
    """The text cannot be encoded (e.g. a lone surrogate, which is not valid Unicode)."""


class MemoryBudgetError(TxMagicError, MemoryError):
    """The capture would not fit in memory, or ran out of it."""


class ModelRunError(TxMagicError, RuntimeError):
    """The model raised while running; the original error is the ``__cause__``."""


#: Phrases torch and the system use when an allocation fails.
_OOM_WORDS = ("out of memory", "not enough memory", "can't allocate memory", "cannot allocate memory",
              "failed to allocate", "std::bad_alloc")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is an allocation failure (MemoryError, torch's OutOfMemoryError, or a RuntimeError saying so)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and any(w in str(exc).lower() for w in _OOM_WORDS)


@contextlib.contextmanager
def model_failures(name: str, tokens: int) -> Iterator[None]:
    """Turn what a model raises while running on `tokens` tokens into one clear message.

    Out-of-memory becomes a `MemoryBudgetError` saying how to get more; anything else a
    `ModelRunError` naming the model and the error (kept as ``__cause__``). tx_magic's own
    errors, KeyboardInterrupt and SystemExit pass unchanged.
    """
    try:
        yield
    except TxMagicError:
        raise
    except Exception as exc:  # every model failure becomes one line (re-raised)
        if is_out_of_memory(exc):
            fewer = max(1, tokens // 2)
            raise MemoryBudgetError(
                f"{name} ran out of memory on {tokens} tokens ({_first_line(exc)}). Pass max_tokens={fewer} "
                f"(in the magic: --max-tokens {fewer}), free memory (del unused models; on a GPU "
                "torch.cuda.empty_cache()), or use a machine with more memory."
            ) from exc
        raise ModelRunError(
            f"{name} raised {type(exc).__name__}: {_first_line(exc)}. Check that the tokenizer belongs to the "
            "model and that it runs alone: model(**tokenizer(text, return_tensors='pt'))."
        ) from exc


def _first_line(exc: BaseException, limit: int = 160) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ReplayError(TxMagicError):
    """An analysis that runs the model again (value norms, queries and keys, information flow) cannot run
    for this trace: it was not captured from a transformers model, the model is gone or changed, or tx_magic
    cannot read the part of it the analysis needs. The message says which, and what to do."""
