"""Activation patching: which heads (layers, positions) carry what makes a clean run differ from a corrupted one.

``patch(model, tokenizer, clean, corrupted, answer=" Mary", wrong=" John")`` runs the corrupted input once per
head with that head's output (its attention-weighted values, before the output projection) taken from the
clean run, and reads a metric at the last position: by default logit(answer) - logit(wrong) (logit(answer)
without `wrong`); for a model without an LM head the cosine similarity of the mean-pooled output embedding
to the clean run's; for an encoder-decoder the decoder's logits. Then::

    raw[layer, head]   the metric of the corrupted run with that head patched in
    effects            (raw - metric_corrupt) / (metric_clean - metric_corrupt): 1 = the head alone restores
                       the clean answer, 0 = it changes nothing, < 0 = it pushes the other way

``by="layer"``: the whole attention block's output of a layer (all its heads: the output projection is linear,
so this is the block's output); ``by="position"``: all heads of a layer at one token. ``method="gradient"`` is
attribution patching (Nanda 2023): ``raw = metric_corrupt + sum over positions of grad . (clean - corrupted)``,
the metric's gradient at the corrupted run with respect to each head's output: one forward and backward
instead of a run per head, a first-order estimate of the exact values.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..capturing.hf import capture_transformers, prepare_inputs
from ..capturing.interventions import Layout, unsupported
from ..capturing.memory import FULL_LIMIT, STREAMED, Shape, full_bytes, plan_capture
from ..capturing.models import is_transformers_model, model_name
from ..capturing.patch_runs import CHUNK_TOKENS, PatchRuns, Recorded, RowPatch
from ..core import extensions
from ..core.errors import OptionError, TxMagicError
from ..core.trace import Trace

BY = ("head", "layer", "position")
METHODS = ("exact", "gradient")


@dataclass(frozen=True)
class Patching:
    """The result of `patch`: ``raw`` metrics, normalised ``effects``, and what they were measured on.

    Shapes: ``by="head"`` (layers, heads); ``"layer"`` (layers,); ``"position"`` (layers, tokens).
    """

    raw: np.ndarray
    effects: np.ndarray
    metric_clean: float
    metric_corrupt: float
    by: str
    method: str
    #: The attention kind whose heads were patched ("self", or an encoder-decoder's "encoder", ...).
    kind: str
    #: Display tokens of the clean and the corrupted input (the patched kind's queries).
    tokens: tuple[str, ...]
    corrupted_tokens: tuple[str, ...]
    #: What the metric is, in words ("logit(' Mary') - logit(' John')").
    metric: str
    model_name: str
    #: Wall-clock seconds the patching took (the clean and corrupted runs included).
    seconds: float
    #: The clean run's capture, which `show` draws beside the effects.
    trace: Trace | None = field(default=None, repr=False, compare=False)

    def table(self) -> Any:
        """One row per patched site (layer, head / position) with its effect and raw metric, largest effect
        first: a pandas DataFrame when pandas is installed, else a list of dicts."""
        records = self.records()
        try:
            import pandas as pd
        except ImportError:
            return records
        return pd.DataFrame.from_records(records)

    def records(self) -> list[dict[str, Any]]:
        """`table` as a list of dicts."""
        rows: list[dict[str, Any]] = []
        for index in np.ndindex(self.effects.shape):
            row: dict[str, Any] = {"layer": int(index[0])}
            if self.by == "head":
                row["head"] = int(index[1])
            elif self.by == "position":
                row["position"] = int(index[1])
                row["token"] = self.tokens[index[1]]
            row.update(effect=float(self.effects[index]), raw=float(self.raw[index]))
            rows.append(row)
        return sorted(rows, key=lambda r: -abs(r["effect"]))

    def top(self, k: int = 10) -> list[tuple[tuple[int, ...], float]]:
        """The `k` sites with the largest |effect|: ((layer, head or position), effect), largest first."""
        flat = np.argsort(-np.abs(self.effects), axis=None, kind="stable")[:k]
        return [(tuple(int(i) for i in np.unravel_index(f, self.effects.shape)), float(self.effects.flat[f]))
                for f in flat]

    def correlation(self, other: Patching) -> float:
        """Spearman rank correlation of this result's effects with `other`'s (e.g. exact vs gradient)."""
        return rank_correlation(self, other)

    def show(self, *others: Patching, **options: Any) -> Any:
        """The widget of the clean run with an Effects tab of this result (and `others` of the same sites side
        by side, e.g. ``exact.show(gradient)``); `tx_magic.widget` draws it."""
        return extensions.call("show_patching", self, *others, **options)

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.effects.shape)
        return (f"Patching({self.model_name!r}, by={self.by!r}, method={self.method!r}, {shape}, metric {self.metric}: "
                f"clean {self.metric_clean:.4g}, corrupted {self.metric_corrupt:.4g})")


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    uniques, inverse = np.unique(values, return_inverse=True)
    if len(uniques) < len(values):
        sums = np.bincount(inverse, weights=ranks)
        ranks = (sums / np.bincount(inverse))[inverse]
    return ranks


def rank_correlation(a: Patching | np.ndarray, b: Patching | np.ndarray) -> float:
    """Spearman's rank correlation of two patchings' effects (or two arrays) over every site."""
    x = np.asarray(a.effects if isinstance(a, Patching) else a, dtype=np.float64).ravel()
    y = np.asarray(b.effects if isinstance(b, Patching) else b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise OptionError(f"cannot correlate effects of {x.size} and {y.size} sites: patch the same model, inputs "
                          "and by=")
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = float(np.sqrt((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / denominator) if denominator > 0 else float("nan")


def token_id(tokenizer: Any, answer: Any, what: str) -> int:
    """The id of `answer` (a string that is exactly one token, or an id); a one-line error otherwise."""
    if isinstance(answer, (int, np.integer)) and not isinstance(answer, bool):
        return int(answer)
    if not isinstance(answer, str) or not answer:
        raise OptionError(f"{what} must be a token (a string such as ' Mary', or a token id), got {answer!r}")
    ids = list(tokenizer(answer, add_special_tokens=False)["input_ids"])
    if len(ids) != 1:
        pieces = [tokenizer.decode([i]) for i in ids]
        hint = f"e.g. {pieces[0]!r}" if pieces else "a word the tokenizer keeps whole"
        raise OptionError(f"{what} {answer!r} is {len(ids)} tokens for this tokenizer ({pieces!r}, ids {ids}): the "
                          f"metric reads one token's logit, so give one token ({hint}), or its id.")
    return int(ids[0])


def _full_limit(model: Any) -> int:
    shape = Shape.of(model)
    if shape is None:
        return 0
    lo, hi = 1, 2
    while full_bytes(shape, hi) <= FULL_LIMIT:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if full_bytes(shape, mid) <= FULL_LIMIT else (lo, mid)
    return lo


def _shown(tokens: Any) -> list[str]:
    return [str(x) for x in tokens.text[:24]] + (["..."] if len(tokens) > 24 else [])


def _token_lengths(clean: Any, corrupted: Any) -> None:
    a, b = clean.sequences, corrupted.sequences
    for name in a:
        if len(a[name]) != len(b[name]):
            shown = _shown
            raise OptionError(
                f"clean is {len(a[name])} tokens and corrupted {len(b[name])} tokens: patching swaps activations "
                f"position by position, so both need the same token length (clean {shown(a[name])}, corrupted "
                f"{shown(b[name])}); change words for words of as many tokens.")


def _metric(metric: Callable[..., Any] | None, reads: str, answer: int | None, wrong: int | None,
            clean: Recorded, names: tuple[str, str | None]) -> tuple[Callable[[Any], Any], str]:
    """A metric on readout rows (B, X) -> (B,), and what it is in words."""
    import torch

    if metric is not None:
        def user(rows: Any) -> Any:
            return torch.stack([torch.as_tensor(metric(row), dtype=torch.float32).reshape(()) for row in rows])

        return user, getattr(metric, "__name__", "metric")
    if reads == "embedding":
        target = clean.readout

        def cosine(rows: Any) -> Any:
            return torch.nn.functional.cosine_similarity(rows, target.to(rows.dtype), dim=-1)

        return cosine, "cosine similarity of the mean-pooled output embedding to the clean run's"
    if answer is None:
        raise OptionError("give answer=' token' (and wrong=' token'): the default metric is logit(answer) - "
                          "logit(wrong) at the last position; or pass metric=callable(logits).")
    vocab = int(clean.readout.shape[-1])
    for value, what in ((answer, "answer"), (wrong, "wrong")):
        if value is not None and not 0 <= value < vocab:
            raise OptionError(f"{what} id {value} is outside the model's {vocab} logits.")
    a, w = answer, wrong
    if w is None:
        return (lambda rows: rows[:, a]), f"logit({names[0]!r})"
    return (lambda rows: rows[:, a] - rows[:, w]), f"logit({names[0]!r}) - logit({names[1]!r})"


def _rows(by: str, kind: str, layers: int, heads: int, queries: int) -> tuple[list[RowPatch], tuple[int, ...]]:
    if by == "head":
        return [RowPatch((kind, layer), (h,)) for layer in range(layers) for h in range(heads)], (layers, heads)
    if by == "layer":
        return [RowPatch((kind, layer)) for layer in range(layers)], (layers,)
    return [RowPatch((kind, layer), None, (p,)) for layer in range(layers) for p in range(queries)], (layers, queries)


def _estimate(by: str, grads: dict[Any, Any], clean: dict[Any, Any], corrupt: dict[Any, Any], kind: str,
              layers: int) -> np.ndarray:
    """First-order change of the metric: grad . (clean - corrupted), summed as `by` asks."""
    out = []
    for layer in range(layers):
        site = (kind, layer)
        contribution = (grads[site] * (clean[site] - corrupt[site])).sum(dim=-1)[0].double()  # (q, H)
        out.append(contribution.sum(dim=0) if by == "head" else contribution.sum() if by == "layer"
                   else contribution.sum(dim=1))
    import torch

    return torch.stack(out).cpu().numpy()


def patch(model: Any, tokenizer: Any, clean: str, corrupted: str, *, answer: Any = None, wrong: Any = None,
          metric: Callable[..., Any] | None = None, by: str = "head", method: str = "exact",
          target: str | None = None, kind: str | None = None, max_tokens: int | None = None,
          chunk_tokens: int = CHUNK_TOKENS) -> Patching:
    """Activation patching between `clean` and `corrupted` (same token length): see the module docstring.

    `answer` / `wrong`: tokens (' Mary', or ids) of the default metric logit(answer) - logit(wrong) at the last
    position; `metric`: any callable on the last position's logits (a model without an LM head: on the
    mean-pooled output embedding) returning a number (a torch scalar for ``method="gradient"``).
    `by`: "head", "layer" or "position"; `method`: "exact" or "gradient" (attribution patching).
    `target`: an encoder-decoder's decoder text (the same for both); `kind`: whose heads to patch
    (default the first: "self" or "encoder"). `chunk_tokens` bounds one batched forward (rows x tokens).
    """
    started = time.perf_counter()
    if by not in BY:
        raise OptionError(f"by must be one of {list(BY)}, got {by!r}")
    if method not in METHODS:
        raise OptionError(f"method must be one of {list(METHODS)}, got {method!r}")
    if not is_transformers_model(model) or not hasattr(tokenizer, "convert_ids_to_tokens"):
        raise unsupported(model, "a model captured with forward hooks (any torch module, or a plain tokenizer) "
                                 "does not use")
    name = model_name(model)
    layout = Layout.of(model, name)
    kind = kind or layout.first_kind
    if kind not in layout.kinds:
        raise OptionError(f"kind must be one of {list(layout.kinds)}, got {kind!r}")
    inputs = [prepare_inputs(model, tokenizer, text, target=target, max_tokens=max_tokens, name=name)
              for text in (clean, corrupted)]
    _token_lengths(*inputs)
    n = len(inputs[0].batch["input_ids"])
    decoder = inputs[0].batch.get("decoder_input_ids")
    plan = plan_capture(model, n, streamable=decoder is None, target=None if decoder is None else len(decoder))
    if plan.mode == STREAMED:
        limit = _full_limit(model)
        raise OptionError(f"{n} tokens is a long input that tx_magic captures streamed, and patching runs the model "
                          f"in full: at most {limit} tokens here. Pass max_tokens={limit} or shorter inputs.")
    ids = (None if answer is None else token_id(tokenizer, answer, "answer"),
           None if wrong is None else token_id(tokenizer, wrong, "wrong"))
    runs = PatchRuns(model, layout, inputs[0], inputs[1])
    clean_run = runs.record("clean")
    if clean_run.reads == "embedding" and metric is None and (answer is not None or wrong is not None):
        raise OptionError(f"{name} has no LM head, so there is no logit of {answer!r} to read: leave answer and wrong "
                          "out (the metric is then the cosine similarity of the mean-pooled output embedding to the "
                          "clean run's), or pass metric=callable(embedding).")
    fn, words = _metric(metric, clean_run.reads, *ids, clean_run, (str(answer), None if wrong is None else str(wrong)))
    metric_clean = float(fn(clean_run.readout).double().sum())
    layers, heads = layout.kinds[kind]
    sequence = "input" if not layout.encoder_decoder else "source" if kind == "encoder" else "target"
    queries = len(inputs[0].sequences[sequence])
    rows, shape = _rows(by, kind, layers, heads, queries)
    if method == "exact":
        corrupt_run = runs.record("corrupted")
        metric_corrupt = float(fn(corrupt_run.readout).double().sum())
        raw = runs.exact(rows, clean_run, corrupt_run, fn, chunk_tokens).reshape(shape)
    else:
        metric_corrupt, grads, corrupt_outputs = runs.gradient(fn)
        raw = metric_corrupt + _estimate(by, grads, clean_run.outputs, corrupt_outputs, kind, layers)
    span = metric_clean - metric_corrupt
    if not abs(span) > 1e-9 * max(1.0, abs(metric_clean)):
        raise TxMagicError(f"the clean and corrupted runs give the same metric ({words} = {metric_clean:.6g}), so "
                           "there is no difference for a head to carry: use inputs that change the answer.")
    tokens, corrupted_tokens = (x.sequences[sequence] for x in inputs)
    trace = capture_transformers(model, tokenizer, clean, target=target, max_tokens=max_tokens, name=name)
    return Patching(raw=raw, effects=(raw - metric_corrupt) / span, metric_clean=metric_clean,
                    metric_corrupt=metric_corrupt, by=by, method=method, kind=kind,
                    tokens=tuple(tokens.text), corrupted_tokens=tuple(corrupted_tokens.text),
                    metric=words, model_name=name, seconds=time.perf_counter() - started, trace=trace)

