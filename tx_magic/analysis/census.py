"""A head census: every head of a model scored on every pattern of the library (`patterns`) over many
inputs (the user's texts and the standard probes of `probes`), with a label and its evidence.

For each pattern and head the census keeps the score on every input (exactly `pattern_scores` of that
input's trace, i.e. the per-trace statistics), and reports:

- ``mean``: the mean over the inputs where the pattern applies (its score is not NaN);
- ``interval``: the 2.5th and 97.5th percentiles of those scores, the range 95 % of the inputs fall in
  (how much the head's behaviour varies from input to input, not the uncertainty of the mean);
- ``shown``: on how many of those inputs the score reaches the pattern's threshold.

A head's label is the first pattern, in the library's priority order, whose mean reaches its threshold
and that reaches it on at least half of the inputs it was scored on; its evidence says which score, on
how many inputs. Inputs under MIN_TOKENS query tokens are skipped (a window or the first token is then
most of every row, whatever the head does), as are inputs the model fails on; ``skipped`` says why.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..capturing import capture, load_model
from ..core import extensions
from ..core.errors import OptionError, TxMagicError
from ..core.tokens import Tokens
from ..core.trace import Trace
from .labels import MIN_TOKENS
from .patterns import Pattern, is_cross, library, pattern_scores
from .probes import DEFAULT_COUNTS, STANDARD, ProbeInput

#: Traces of inputs kept for re-showing (each is captured again when asked for after that).
TRACES_KEPT = 4


@dataclass(frozen=True)
class Evidence:
    """Why a head got its label: the score, its spread, and on how many inputs it reached the threshold."""

    pattern: str
    mean: float
    low: float
    high: float
    threshold: float
    shown: int
    scored: int

    def __str__(self) -> str:
        return (f"{self.pattern} {self.mean:.2f} (95% of inputs {self.low:.2f}-{self.high:.2f}); "
                f">= {self.threshold:g} on {self.shown} of {self.scored} inputs")


class Census:
    """Scores of every head on every pattern over many inputs; see the module docstring."""

    def __init__(self, *, model_name: str, kind: str, inputs: Sequence[ProbeInput], tokens: Sequence[Tokens],
                 patterns: Sequence[Pattern], values: np.ndarray, skipped: Sequence[tuple[str, str]] = (),
                 runner: Callable[[ProbeInput], Trace] | None = None) -> None:
        self.model_name = model_name
        self.kind = kind
        self.inputs = list(inputs)
        #: The query tokens of each input, as the model saw them.
        self.tokens = list(tokens)
        self.library = list(patterns)
        #: Every score: (inputs, patterns, layers, heads) float64, NaN where a pattern does not apply.
        self.values = values
        #: (input label, reason) of the inputs left out.
        self.skipped = list(skipped)
        self._runner = runner
        self._traces: OrderedDict[int, Trace] = OrderedDict()
        self._labels: np.ndarray | None = None

    @property
    def patterns(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.library)

    @property
    def shape(self) -> tuple[int, int]:
        """(layers, heads)."""
        return int(self.values.shape[2]), int(self.values.shape[3])

    def _index(self, pattern: str) -> int:
        if pattern not in self.patterns:
            raise OptionError(f"this census has no pattern {pattern!r}; it has {list(self.patterns)}")
        return self.patterns.index(pattern)

    def threshold(self, pattern: str) -> float:
        return self.library[self._index(pattern)].threshold

    def scores(self, pattern: str) -> np.ndarray:
        """The pattern's score on every input: (inputs, layers, heads), NaN where it does not apply."""
        return self.values[:, self._index(pattern)]

    def scored(self, pattern: str) -> np.ndarray:
        """How many inputs each head was scored on for `pattern` (layers, heads)."""
        counts: np.ndarray = np.isfinite(self.scores(pattern)).sum(0)
        return counts

    def mean(self, pattern: str) -> np.ndarray:
        """The mean score over the inputs where it applies (layers, heads); NaN where none does."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result: np.ndarray = np.nanmean(self.scores(pattern), axis=0)
        return result

    def interval(self, pattern: str) -> tuple[np.ndarray, np.ndarray]:
        """2.5th and 97.5th percentiles of the score over the inputs where it applies, each (layers, heads)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanpercentile(self.scores(pattern), [2.5, 97.5], axis=0)
        return low, high

    def shown(self, pattern: str) -> np.ndarray:
        """On how many inputs each head's score reaches the pattern's threshold (layers, heads)."""
        counts: np.ndarray = (np.nan_to_num(self.scores(pattern), nan=-np.inf) >= self.threshold(pattern)).sum(0)
        return counts

    @property
    def labels(self) -> np.ndarray:
        """Each head's label (layers, heads), "" for none: see the module docstring."""
        if self._labels is None:
            labels = np.full(self.shape, "", dtype=object)
            for pattern in reversed(self.patterns):  # earlier patterns overwrite later ones
                labels[self._shows(pattern)] = pattern
            self._labels = labels
        return self._labels

    def _shows(self, pattern: str) -> np.ndarray:
        scored, shown = self.scored(pattern), self.shown(pattern)
        strong = np.nan_to_num(self.mean(pattern), nan=-np.inf) >= self.threshold(pattern)
        result: np.ndarray = strong & (scored > 0) & (2 * shown >= scored)
        return result

    def evidence(self, layer: int, head: int, pattern: str | None = None) -> Evidence | None:
        """The evidence for `pattern` (default: the head's label) at (layer, head); None without a label."""
        pattern = pattern or str(self.labels[layer, head])
        if not pattern:
            return None
        low, high = self.interval(pattern)
        return Evidence(pattern, float(self.mean(pattern)[layer, head]), float(low[layer, head]),
                        float(high[layer, head]), self.threshold(pattern), int(self.shown(pattern)[layer, head]),
                        int(self.scored(pattern)[layer, head]))

    def heads(self, label: str) -> list[tuple[int, int]]:
        """(layer, head) of every head labelled `label`."""
        self._index(label)
        return [(int(layer), int(head)) for layer, head in zip(*np.nonzero(self.labels == label), strict=True)]

    def best_inputs(self, layer: int, head: int, pattern: str | None = None, n: int = 3) -> list[int]:
        """Indices of the `n` inputs where (layer, head) scores highest on `pattern` (default: its label,
        else the pattern it comes closest to its threshold on)."""
        pattern = pattern or str(self.labels[layer, head]) or self.closest(layer, head)
        scores = self.scores(pattern)[:, layer, head]
        ranked = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")
        order = [int(i) for i in ranked if np.isfinite(scores[i])]
        return order[:n]

    def representative(self, n: int | None = None) -> list[int]:
        """Inputs ordered by how many labelled heads have them as their best input (the most first; inputs
        no head picks follow in order): the ones worth showing. The first `n` when given."""
        votes = np.zeros(len(self.inputs), dtype=np.int64)
        layers, heads = self.shape
        for layer in range(layers):
            for head in range(heads):
                if self.labels[layer, head]:
                    votes[self.best_inputs(layer, head, n=1)] += 1
        order = [int(i) for i in np.argsort(-votes, kind="stable")]
        return order if n is None else order[:n]

    def closest(self, layer: int, head: int) -> str:
        """The pattern whose mean score at (layer, head) is the largest share of its threshold."""
        ratios = [np.nan_to_num(self.mean(p)[layer, head] / self.threshold(p), nan=-np.inf) for p in self.patterns]
        return self.patterns[int(np.argmax(ratios))]

    def table(self) -> Any:
        """One row per head: layer, head, the mean score of each pattern, the label and its evidence
        (a pandas DataFrame when pandas is installed, else a list of dicts)."""
        means = {p: self.mean(p) for p in self.patterns}
        layers, heads = self.shape
        rows = []
        for layer in range(layers):
            for head in range(heads):
                evidence = self.evidence(layer, head)
                rows.append({"layer": layer, "head": head, **{p: float(means[p][layer, head]) for p in self.patterns},
                             "label": str(self.labels[layer, head]),
                             "evidence": "" if evidence is None else str(evidence)})
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame.from_records(rows)

    def trace(self, index: int) -> Trace:
        """The trace of input `index` (captured again when it is no longer kept)."""
        if not 0 <= index < len(self.inputs):
            raise OptionError(f"input must be in 0..{len(self.inputs) - 1}, got {index}")
        if index in self._traces:
            self._traces.move_to_end(index)
            return self._traces[index]
        if self._runner is None:
            raise TxMagicError("this census keeps no model to run its inputs again")
        trace = self._runner(self.inputs[index])
        self.keep(index, trace)
        return trace

    def keep(self, index: int, trace: Trace) -> None:
        """Keep the trace of input `index` (the last TRACES_KEPT are kept)."""
        self._traces[index] = trace
        self._traces.move_to_end(index)
        while len(self._traces) > TRACES_KEPT:
            self._traces.popitem(last=False)

    def show(self, **options: Any) -> Any:
        """The widget: layers x heads coloured by label; click a head to see it on its best inputs."""
        return extensions.call("show_census", self, **options)

    def save_html(self, path: Any, **options: Any) -> Any:
        """Write a self-contained offline report of the census (`tx_magic.report`)."""
        return extensions.call("census_report", self, path, **options)

    def __repr__(self) -> str:
        counts = {p: len(self.heads(p)) for p in self.patterns}
        found = ", ".join(f"{n} {p}" for p, n in counts.items() if n) or "no labelled heads"
        layers, heads = self.shape
        return f"Census({self.model_name!r}, {self.kind}, {len(self.inputs)} inputs, {layers}x{heads} heads: {found})"


def census(model: Any = None, tokenizer: Any = None, texts: Sequence[Any] | None = None, *,
           probes: bool | Sequence[str] = True, kind: str | None = None, counts: dict[str, int] | None = None,
           seed: int = 0, max_tokens: int | None = None, progress: bool = True) -> Census:
    """Score every head of `model` on every pattern of the library over many inputs.

    `texts`: the user's inputs (strings; for an encoder-decoder, (source, target) pairs or dicts with
    "text" and "target"). `probes`: True for every standard probe (`tx_magic.analysis.probes`), False for
    none, or a list of their names; patterns registered with a probe add its inputs. `counts` changes how
    many inputs each probe makes (`probes.DEFAULT_COUNTS`); `seed` makes them repeatable. `kind` is the
    attention kind scored (default the first: "self", or "encoder"; "cross" for alignment).
    """
    name = None
    if model is None or isinstance(model, str):
        loaded = load_model(model)
        model, tokenizer, name = loaded.model, tokenizer or loaded.tokenizer, loaded.name
    inputs = _user_inputs(texts) + _probe_inputs(tokenizer, probes, counts or {}, seed)
    if not inputs:
        raise OptionError("nothing to run: give texts, or leave the standard probes on (probes=True)")
    encoder_decoder = bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))

    def run(item: ProbeInput) -> Trace:
        text, ids, target = item.text, item.ids, item.target
        if encoder_decoder and target is None:  # generated probes on an encoder-decoder: copy the source
            text = text if text is not None else tokenizer.decode(list(ids or ()), skip_special_tokens=True)
            ids, target = None, text
        return capture(model, tokenizer, text or "", ids=None if ids is None else list(ids), target=target,
                       max_tokens=max_tokens, name=name)

    return _score(inputs, run, kind, progress)


def _score(inputs: Sequence[ProbeInput], run: Callable[[ProbeInput], Trace], kind: str | None,
           progress: bool) -> Census:
    from tqdm.auto import tqdm

    kept: list[tuple[int, ProbeInput, Trace, dict[str, np.ndarray]]] = []
    skipped: list[tuple[str, str]] = []
    chosen: list[Pattern] | None = None
    for item in tqdm(inputs, desc="tx_magic census", unit="input", disable=not progress, leave=False):
        try:
            trace = run(item)
        except TxMagicError as exc:
            skipped.append((item.label, str(exc)))
            continue
        kind = kind or trace.kinds[0]
        if kind not in trace.kinds:
            raise OptionError(f"kind must be one of {list(trace.kinds)}, got {kind!r}")
        if trace.shape(kind)[2] < MIN_TOKENS:
            skipped.append((item.label, f"{trace.shape(kind)[2]} tokens, under the {MIN_TOKENS} a census needs"))
            continue
        chosen = chosen or library(is_cross(trace, kind))
        kept.append((len(kept), item, trace, pattern_scores(trace, kind, chosen)))
    if not kept or chosen is None or kind is None:
        reason = f": {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise TxMagicError(f"no input could be scored{reason}")
    shapes = {trace.shape(kind)[:2] for _, _, trace, _ in kept}
    if len(shapes) > 1:
        raise TxMagicError(f"the inputs gave different numbers of layers x heads {sorted(shapes)}: one model only")
    values = np.stack([np.stack([scores[p.name] for p in chosen]) for *_, scores in kept])
    result = Census(model_name=kept[0][2].model_name, kind=kind, inputs=[item for _, item, _, _ in kept],
                    tokens=[trace.tokens(kind)[0] for _, _, trace, _ in kept], patterns=chosen, values=values,
                    skipped=skipped, runner=run)
    for index, _, trace, _ in kept[-TRACES_KEPT:]:
        result.keep(index, trace)
    return result


def _user_inputs(texts: Sequence[Any] | None) -> list[ProbeInput]:
    if texts is None:
        return []
    if isinstance(texts, str):
        texts = [texts]
    out = []
    for item in texts:
        if isinstance(item, str):
            out.append(ProbeInput("text", text=item))
        elif isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(t, str) for t in item):
            out.append(ProbeInput("text", text=item[0], target=item[1]))
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            out.append(ProbeInput("text", text=item["text"], target=item.get("target")))
        else:
            raise OptionError(f"texts are strings, (source, target) pairs or {{'text': ..., 'target': ...}}, "
                              f"got {type(item).__name__}")
    return out


def _probe_inputs(tokenizer: Any, probes: bool | Sequence[str], counts: dict[str, int],
                  seed: int) -> list[ProbeInput]:
    if probes is False:
        return []
    names = list(STANDARD) if probes is True else list(probes)
    unknown = [n for n in names if n not in STANDARD]
    if unknown:
        raise OptionError(f"unknown probe {unknown[0]!r}; the standard probes are {list(STANDARD)}")
    rng = np.random.default_rng(seed)
    out: list[ProbeInput] = []
    for name in names:
        out.extend(STANDARD[name](tokenizer, rng, int(counts.get(name, DEFAULT_COUNTS[name]))))
    for pattern in library():
        if pattern.probe is not None:
            made = pattern.probe(tokenizer, rng)
            out.extend(ProbeInput(pattern.name, text=m) if isinstance(m, str) else
                       ProbeInput(pattern.name, ids=tuple(int(i) for i in m)) for m in made)
    return out

