"""The logit lens (nostalgebraist 2020): read each layer's hidden state as a prediction.

Each row's hidden state goes through the model's own final norm and unembedding (``lm_head``),
as if the layers above it were skipped; the top-k tokens and their probabilities (softmax
over the whole vocabulary) are kept per row and position. Row 0 is the embeddings, the last
row the model's real output.

Computed on demand: a capture keeps the hidden states and a handle on the final norm and
unembedding (`LogitLens`), and `LogitLens.top` computes the positions asked for (the widget
asks for the ones its lens tab shows), caching them. Each position costs rows x vocabulary x
width multiply-adds (SmolLM2: 31 x 49152 x 576 = 0.9 G), which is why none is computed at capture.
At most about `CHUNK_VALUES` logits exist at once (49k vocab x 4096 positions is never materialised).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from ..tokens import clean_marker

#: Logits held at once while computing the lens (float32): 8M values = 32 MB.
CHUNK_VALUES = 8 * 1024 * 1024
#: Top tokens kept per row and position.
TOP_K = 5
#: Attribute names of a causal LM's final norm, on the model or its base model.
_NORM_NAMES = ("ln_f", "norm", "final_layer_norm", "final_layernorm", "final_norm", "layer_norm")


@dataclass(frozen=True)
class LensTop:
    """The lens at some positions: top-k tokens per row (embeddings, then each layer) and position."""

    #: Positions covered, in the order of axis 1 of `ids` and `probs`.
    positions: tuple[int, ...]
    #: int32 (layers + 1, len(positions), k): token ids, most probable first.
    ids: np.ndarray
    #: float32 (layers + 1, len(positions), k): their probabilities.
    probs: np.ndarray


class LogitLens:
    """The logit lens of one capture, computed on demand and cached per position.

    Holds the hidden states as float32 numpy (layers + 1, tokens, width): 4 x that many bytes
    (SmolLM2-135M at 512 tokens: 31 x 512 x 576 x 4 = 37 MB), plus a handle on the model's final
    norm and unembedding (the model's own modules, not copies). ``trace.lens.top([3, 4])`` gives
    positions 3 and 4; ``trace.lens.top()`` every position (costly for long inputs, see the module).
    """

    def __init__(self, hidden: np.ndarray, unembed: "Unembedding", *, last_normed: bool, k: int = TOP_K,
                 chunk_values: int = CHUNK_VALUES) -> None:
        if hidden.ndim != 3:
            raise ValueError(f"LogitLens needs hidden states (rows, tokens, width), got shape {hidden.shape}")
        self.hidden = np.ascontiguousarray(hidden, dtype=np.float32)
        self.unembed = unembed
        self.last_normed = last_normed
        self.k = min(k, unembed.vocab_size)
        self.chunk_values = chunk_values
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def layers(self) -> int:
        """Transformer layers (rows minus the embeddings row)."""
        return self.hidden.shape[0] - 1

    @property
    def tokens(self) -> int:
        return self.hidden.shape[1]

    @property
    def computed(self) -> tuple[int, ...]:
        """Positions computed so far (and cached), in order."""
        return tuple(sorted(self._cache))

    @property
    def nbytes(self) -> int:
        """Memory the kept hidden states take."""
        return int(self.hidden.nbytes)

    def top(self, positions: Iterable[int] | None = None) -> LensTop:
        """Top-k tokens and probabilities of every row at `positions` (default: all; -1 is the last)."""
        wanted = tuple(range(self.tokens)) if positions is None else tuple(self._position(p) for p in positions)
        missing = sorted({p for p in wanted if p not in self._cache})
        if missing:
            ids, probs = self._compute(missing)
            for i, p in enumerate(missing):
                self._cache[p] = (ids[:, i], probs[:, i])
        rows = self.layers + 1
        if not wanted:
            return LensTop((), np.zeros((rows, 0, self.k), np.int32), np.zeros((rows, 0, self.k), np.float32))
        return LensTop(wanted, np.stack([self._cache[p][0] for p in wanted], axis=1),
                       np.stack([self._cache[p][1] for p in wanted], axis=1))

    def _position(self, p: Any) -> int:
        p = int(p)
        q = p + self.tokens if p < 0 else p
        if not 0 <= q < self.tokens:
            raise IndexError(f"position must be in 0..{self.tokens - 1}, got {p}")
        return q

    def _compute(self, positions: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        import torch

        rows, m, vocab = self.layers + 1, len(positions), self.unembed.vocab_size
        h = torch.from_numpy(np.ascontiguousarray(self.hidden[:, np.asarray(positions)]))  # (rows, m, d)
        raw = rows - 1 if self.last_normed else rows  # rows that still need the final norm
        parts = [self.unembed.normed(h[:raw])] if raw else []
        rest = h[raw:].to(device=parts[0].device, dtype=parts[0].dtype) if parts else h
        x = torch.cat(parts + [rest]).reshape(rows * m, -1)
        # Every row and position in as few matrix products as CHUNK_VALUES allows (the unembedding
        # is read from memory once a product: one per row would read it rows times).
        step = max(1, self.chunk_values // max(vocab, 1))
        ids = np.zeros((rows * m, self.k), dtype=np.int32)
        probs = np.zeros((rows * m, self.k), dtype=np.float32)
        for start in range(0, rows * m, step):
            logits = self.unembed.logits(x[start:start + step], normed=True)
            top = logits.topk(self.k, dim=-1)
            ids[start:start + step] = top.indices.cpu().numpy()
            probs[start:start + step] = torch.exp(top.values - torch.logsumexp(logits, dim=-1, keepdim=True)).cpu().numpy()
        return ids.reshape(rows, m, self.k), probs.reshape(rows, m, self.k)


class Unembedding:
    """A causal LM's final norm and unembedding, as one map from hidden states to logits."""

    def __init__(self, norm: Any, head: Any) -> None:
        self.norm = norm
        self.head = head

    @property
    def vocab_size(self) -> int:
        weight = getattr(self.head, "weight", None)
        return int(weight.shape[0]) if weight is not None else int(self.head.out_features)

    def _to_head(self, hidden: Any) -> Any:
        """`hidden` on the device and dtype the head computes in. A head offloaded by accelerate
        (``device_map`` with disk/CPU offload) has its weight on "meta" and computes on its hook's
        execution device, loading the weight as it runs."""
        weight = getattr(self.head, "weight", None)
        if weight is None:
            return hidden
        device = weight.device
        if device.type == "meta":
            hook = getattr(self.head, "_hf_hook", None)
            device = getattr(hook, "execution_device", None) or "cpu"
        return hidden.to(device=device, dtype=weight.dtype)

    def normed(self, hidden: Any) -> Any:
        """Hidden states (torch, any leading shape) through the final norm, on the head's device and dtype."""
        import torch

        with torch.inference_mode():
            return self.norm(self._to_head(hidden))

    def logits(self, hidden: Any, *, normed: bool = False, ids: Any = None) -> Any:
        """float32 logits (m, V) for hidden states (m, d) (a torch tensor); `normed` skips the norm;
        `ids` (a tensor of token ids) computes only those columns (m, len(ids))."""
        import torch

        with torch.inference_mode():
            weight = getattr(self.head, "weight", None)
            x = self._to_head(hidden)  # kept hidden states are float32 on the CPU: back to the head's device
            x = x if normed else self.norm(x)
            if ids is None:
                return self.head(x).float()
            if type(self.head) is torch.nn.Linear and weight.device.type != "meta":  # only the rows asked for
                ids = ids.to(weight.device)
                bias = self.head.bias[ids] if self.head.bias is not None else None
                return torch.nn.functional.linear(x, weight[ids], bias).float()
            return self.head(x)[:, ids.to(x.device)].float()


def find_unembedding(model: Any) -> Unembedding | None:
    """The final norm and ``lm_head`` of a causal LM, or None when the model has no such pair."""
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False) or not hasattr(model, "get_output_embeddings"):
        return None
    try:
        head = model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if head is None:
        return None
    base = getattr(model, "base_model", None)
    for owner in (base, model, getattr(base, "decoder", None)):
        for name in _NORM_NAMES:
            norm = getattr(owner, name, None) if owner is not None else None
            if norm is not None and callable(norm) and not isinstance(norm, (bool, int, float)):
                return Unembedding(norm, head)
    return None


def hidden_array(hidden_states: Sequence[Any]) -> np.ndarray:
    """float32 numpy (rows, tokens, width) from a model's ``hidden_states`` (tensors (1, n, d) or (n, d))."""
    rows = []
    for h in hidden_states:
        if hasattr(h, "detach"):
            h = h.detach().float().cpu().numpy()
        h = np.asarray(h, dtype=np.float32)
        rows.append(h[0] if h.ndim == 3 else h)
    return np.stack(rows)


def logit_lens(hidden_states: Sequence[Any] | np.ndarray, unembed: Unembedding, *, last_normed: bool,
               k: int = TOP_K, chunk_values: int = CHUNK_VALUES) -> LogitLens:
    """The lens of hidden states (a sequence of (1, n, d) tensors, or a (rows, n, d) array) through
    `unembed`, computed when asked (`LogitLens.top`).

    `last_normed`: the last hidden state already went through the final norm (transformers
    returns it so), so it goes straight into the unembedding.
    """
    hidden = hidden_states if isinstance(hidden_states, np.ndarray) else hidden_array(hidden_states)
    return LogitLens(hidden, unembed, last_normed=last_normed, k=k, chunk_values=chunk_values)


def last_is_normed(hidden_states: Sequence[Any], unembed: Unembedding, logits_last: Any) -> bool:
    """Whether the model's last hidden state is already normed: its unembedding alone gives the
    model's own logits (checked at the last position)."""
    import torch

    h = hidden_states[-1]
    h = h[0] if h.dim() == 3 else h
    theirs = logits_last.reshape(-1).float()
    if theirs.shape[0] != unembed.vocab_size:
        return False
    # A sample of the vocabulary (the model's top 8 and evenly spaced ids) tells as well as all of it.
    ids = torch.cat([theirs.topk(min(8, theirs.shape[0])).indices,
                     torch.linspace(0, theirs.shape[0] - 1, min(56, theirs.shape[0]), device=theirs.device).long()])
    mine = unembed.logits(h[-1:], normed=True, ids=ids)[0]
    return bool(torch.allclose(mine, theirs[ids].to(mine.device), rtol=1e-3, atol=1e-3))


def vocab_strings(tokenizer: Any, size: int) -> tuple[str, ...]:
    """Display string of every token id below `size`: the tokenizer's own decoding of the token
    alone (" Paris" keeps its space), or the raw token with its markers cleaned where that decoding
    is a partial character. Ids the tokenizer does not know show as ``<id N>``. Cached per tokenizer.

    Byte-level BPE vocabularies (GPT-2, SmolLM2, Llama 3, ...) are mapped from their raw tokens
    without running the decoder (50k tokens: ~0.1 s instead of ~1 s), checked against the decoder
    on a sample; other tokenizers decode every token.
    """
    try:
        cached = _VOCAB_CACHE.get(tokenizer)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached is not None and len(cached) == size:
        return cached
    out = _vocab_strings(tokenizer, size)
    try:
        _VOCAB_CACHE[tokenizer] = out
    except TypeError:
        pass
    return out


_VOCAB_CACHE: "weakref.WeakKeyDictionary[Any, tuple[str, ...]]" = weakref.WeakKeyDictionary()
#: Ids checked against the tokenizer's own decoder when the byte-level mapping is used.
VOCAB_CHECK_SAMPLE = 256


def _vocab_strings(tokenizer: Any, size: int) -> tuple[str, ...]:
    known = min(size, len(tokenizer)) if hasattr(tokenizer, "__len__") else size
    try:
        raw = _raw_tokens(tokenizer, known)
    except Exception:  # noqa: BLE001 - any tokenizer: fall back to ids
        return tuple(f"<id {i}>" for i in range(size))
    out = _byte_level_strings(tokenizer, raw) if _is_byte_level(tokenizer) else None
    if out is None:
        out = _decoded_strings(tokenizer, raw, range(known))
    return tuple(out) + tuple(f"<id {i}>" for i in range(known, size))


def _raw_tokens(tokenizer: Any, known: int) -> list[str]:
    """The tokenizer's own string of each id below `known` (one call into a fast tokenizer's vocabulary)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        raw: list[str | None] = [None] * known
        for token, i in backend.get_vocab(with_added_tokens=True).items():
            if 0 <= i < known:
                raw[i] = token
        if None not in raw:
            return raw  # type: ignore[return-value]
    return [str(t) for t in tokenizer.convert_ids_to_tokens(list(range(known)))]


def _display(raw: str, decoded: Any) -> str:
    """One token's display string from its raw form and its decoding alone."""
    if not isinstance(decoded, str) or not decoded or "\ufffd" in decoded:
        return clean_marker(raw)
    if raw[:1] in ("▁", "Ġ") and not decoded.startswith(" "):  # sentencepiece drops a lone token's space
        return " " + decoded
    return decoded


def _decoded_strings(tokenizer: Any, raw: Sequence[str], ids: Iterable[int]) -> list[str]:
    """Display strings of `ids` (whose raw tokens are `raw`) through the tokenizer's decoder."""
    ids = list(ids)
    try:
        decoded = tokenizer.batch_decode([[i] for i in ids], skip_special_tokens=False,
                                         clean_up_tokenization_spaces=False)
    except Exception:  # noqa: BLE001
        decoded = [None] * len(ids)
    return [_display(r, d) for r, d in zip(raw, decoded)]


def _is_byte_level(tokenizer: Any) -> bool:
    """Whether the tokenizer decodes with a plain byte-level decoder (GPT-2 style)."""
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    return decoder is not None and type(decoder).__name__ == "ByteLevel"


def _byte_level_strings(tokenizer: Any, raw: Sequence[str]) -> list[str] | None:
    """Display strings by undoing the byte-to-unicode map of byte-level BPE, or None when a sample
    of ids decodes differently (then every token is decoded)."""
    table = str.maketrans({c: chr(b) for b, c in _bytes_to_unicode().items()})
    added = {int(i): str(getattr(t, "content", t)) for i, t in
             (getattr(tokenizer, "added_tokens_decoder", None) or {}).items()}
    plain = ["" if i in added else t for i, t in enumerate(raw)]
    try:  # each character of a token stands for one byte of its UTF-8 text: translate them all at once
        data = "".join(plain).translate(table).encode("latin-1")
    except UnicodeError:
        data = None
    out: list[str] = []
    end = 0
    for i, token in enumerate(raw):
        if i in added:
            out.append(_display(token, added[i]))
            continue
        start, end = end, end + len(token)
        try:
            text = (data[start:end] if data is not None else token.translate(table).encode("latin-1")).decode("utf-8")
        except UnicodeError:
            out.append(clean_marker(token))
            continue
        out.append(text if text and "\ufffd" not in text else clean_marker(token))
    n = len(raw)
    sample = sorted(set(np.linspace(0, n - 1, min(n, VOCAB_CHECK_SAMPLE)).astype(int).tolist()) | set(added))
    sample = [i for i in sample if i < n]
    if _decoded_strings(tokenizer, [raw[i] for i in sample], sample) != [out[i] for i in sample]:
        return None
    return out


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable unicode characters (its vocabulary's alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))
