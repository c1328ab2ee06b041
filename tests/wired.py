"""Small attention models wired by hand to have known head patterns (and one built without them), for the
census tests. Each layer reports its probabilities through tx_magic's protocol (``self.tx_magic_attention``).

The residual stream of token i is ``[onehot(token_i), onehot(token_{i-1}) slot, onehot(position_i), 1]``:
the previous-token slot starts empty and layer 0's previous-token head fills it (its values copy the token
block of the key into the slot), so layer 1's induction head can match "the token before key j" against
the query's token, as Olsson et al. (2022) describe induction heads forming from a previous-token head.

Layer 0: previous token (0), first token (1), self (2), uniform (3).
Layer 1: induction (0), duplicate token (1), uniform (2, 3).
"""

from __future__ import annotations

import torch
from torch import nn

VOCAB, POSITIONS = 64, 320
TOK, PREV, POS = slice(0, VOCAB), slice(VOCAB, 2 * VOCAB), slice(2 * VOCAB, 2 * VOCAB + POSITIONS)
BIAS = 2 * VOCAB + POSITIONS
WIDTH = BIAS + 1
SHARP = 25.0
HEADS = 4
EXPECTED = {(0, 0): "previous", (0, 1): "first", (0, 2): "self", (0, 3): "broad",
            (1, 0): "induction", (1, 1): "duplicate", (1, 2): "broad", (1, 3): "broad"}


class WiredLayer(nn.Module):
    """Causal multi-head attention with explicit (WIDTH x WIDTH) query, key, value maps per head."""

    def __init__(self) -> None:
        super().__init__()
        self.wq = nn.Parameter(torch.zeros(HEADS, WIDTH, WIDTH))
        self.wk = nn.Parameter(torch.zeros(HEADS, WIDTH, WIDTH))
        self.wv = nn.Parameter(torch.zeros(HEADS, WIDTH, WIDTH))
        self.tx_magic_attention = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        q = torch.einsum("bnd,hde->bhne", x, self.wq)
        k = torch.einsum("bnd,hde->bhne", x, self.wk)
        v = torch.einsum("bnd,hde->bhne", x, self.wv)
        scores = q @ k.transpose(-1, -2)
        causal = torch.tril(torch.ones(n, n, dtype=torch.bool))
        probs = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        self.tx_magic_attention = probs
        return x + (probs @ v).sum(1)


class Wired(nn.Module):
    """Two layers: tokens and positions in, the residual stream out."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([WiredLayer(), WiredLayer()])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        n = ids.shape[1]
        x = torch.zeros(ids.shape[0], n, WIDTH)
        x[..., TOK] = nn.functional.one_hot(ids % VOCAB, VOCAB).float()
        x[..., POS] = nn.functional.one_hot(torch.arange(n), POSITIONS).float()
        x[..., BIAS] = 1.0
        for layer in self.layers:
            x = layer(x)
        return x


def _eye(block: slice, to: slice | None = None, scale: float = 1.0) -> torch.Tensor:
    m = torch.zeros(WIDTH, WIDTH)
    rows = torch.arange(block.start, block.stop)
    cols = torch.arange((to or block).start, (to or block).stop)
    m[rows, cols] = scale
    return m


def wired() -> Wired:
    """The model with the patterns of the module docstring."""
    model = Wired()
    with torch.no_grad():
        l0, l1 = model.layers
        shift = torch.zeros(WIDTH, WIDTH)  # key j -> feature of position j + 1
        for j in range(POSITIONS - 1):
            shift[POS.start + j, POS.start + j + 1] = 1.0
        l0.wq[0] = _eye(POS, scale=SHARP)
        l0.wk[0] = shift
        l0.wv[0] = _eye(TOK, PREV)  # copy the previous token into its slot
        l0.wq[1][BIAS, POS.start] = SHARP
        l0.wk[1][POS.start, POS.start] = 1.0  # only position 0 has the key feature
        l0.wq[2] = _eye(POS, scale=SHARP)
        l0.wk[2] = _eye(POS)
        l1.wq[0] = _eye(TOK, scale=SHARP)
        l1.wk[0] = _eye(PREV, TOK)  # the token before key j, compared with the query's token
        l1.wq[1] = _eye(TOK, scale=SHARP) + _eye(POS, scale=SHARP)
        l1.wk[1] = _eye(TOK) - _eye(POS)  # the same token, but not the query's own position
    return model.eval()


def unwired(seed: int = 0) -> Wired:
    """The same architecture with random query and key maps: no pattern built in."""
    torch.manual_seed(seed)
    model = Wired()
    with torch.no_grad():
        for layer in model.layers:
            layer.wq.normal_(0, 0.3)
            layer.wk.normal_(0, 0.3)
    return model.eval()


class WordIds:
    """A tokenizer for the wired models: words to ids by a stable hash; ``vocab_size`` for random probes."""

    vocab_size = VOCAB

    def __call__(self, text: str) -> list[int]:
        return [sum(map(ord, word)) % VOCAB for word in text.split()]

    def decode(self, ids: list[int]) -> str:
        return " ".join(f"t{i}" for i in ids)
