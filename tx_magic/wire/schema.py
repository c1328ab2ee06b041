"""The wire between Python and the renderer, declared once: constants and a TypedDict for every JSON
object that crosses (mirrored by the interfaces of js/src/wire-schema.ts; tests/test_wire_in_step.py
and js/tests/wire-schema.test.ts check both declare the same objects, keys and constants).

Version 3. A trace crosses as three synced traits, plus requests and replies over custom messages.
Interventions and patching add their objects from `tx_magic.wire.schema_interventions` (imported here).

- ``_meta`` (`Meta`): the model, warnings, token sequences (`TokenSequence`), each attention kind
  (`Kind`, with its `Thumbnails`, an explicit mask's ``mask_data`` and, for a streamed kind,
  ``stats`` and ``head_types``) and, for a vision model, the picture it saw (`Image`).
- ``_layers``: the blocks sent eagerly (`tx_magic.wire.eager_layers`), `ValueBlock` and `TopKBlock`.
- ``_internals`` (`Internals`, {} when the trace has none): hidden states (`Hidden`), the lens's
  shape (`LensInfo`, its cells come on request), the last position's logits (`Logits`), the
  vocabulary and a generation's steps (`Generation`).

Bytes travel as ``bytes`` (ipywidgets sends them as binary buffers), as a custom message's buffers,
or, in reports, as base64 text. Values:

- A value block covers queries q0 .. min(Q, q0 + R*p) and keys k0 .. min(K, k0 + C*p) of one layer,
  (head, row, column) row-major; with pool p > 1 each value is the max over a p x p tile (the last
  may be partial). float32 data is little-endian. uint8: value = byte / 255 * scale[head, row], with
  ``scale`` float32 (H, R) the row's max: the absolute error is at most scale / 510. ``layout``
  LAYOUT_DENSE (the default) holds every cell; LAYOUT_LOWER (a causal kind's whole layer, R = C) holds
  row r's first r + 1 values only, rows packed one after another per head: the cells above the
  diagonal are masked, so 0, and are not sent (half the bytes).
- A top-k block holds each query row's k largest weights (float32) and their key indices (int32),
  largest first; rows with fewer than k allowed keys are padded with weight 0.
- Thumbnails: uint8 (layer, head, T, T), round(255 * max over each tile), T = min(THUMBNAIL_SIZE, Q, K),
  the tiles split as ``numpy.array_split`` does. ``mask_data``: Q*K uint8, 1 = allowed. ``stats``:
  float32 (layer, head) per name of `tx_magic.analysis.STAT_NAMES`; ``head_types`` [layer][head].
- Hidden norms and cosines: float32 (L+1, n), row 0 the embeddings (cosines[0] is NaN). Lens replies:
  int32 ids and float32 probabilities, each (L+1, len(positions), k). Logits: float32 (V,).
- ``_meta["image"]``: ``png`` as resized for the model (W x H); tokens ``first`` ..
  ``first + rows*cols - 1`` of ``sequence`` are its patches, row by row.

Requests (`tx_magic.wire.rpc`) go either way in one envelope: `Request` ``{"type", "id", "payload"}``
is answered by `Reply` ``{"type": REPLY, "id", "content"}`` with the reply's bytes as the message's
buffers (and, from a widget, ``kernel_ms``: the time it took to compute), or by `ErrorReply`
``{"type": REPLY_ERROR, "id", "message"}``. The renderer asks for
REQUEST_LAYER (`LayerRequest` -> `BlockHeader`, buffers [data] or [data, scale]), REQUEST_BLOCK
(`BlockRequest` -> `BlockHeader` of exact float32, [data]), REQUEST_TOPK (`TopKRequest` ->
`TopKHeader`, [index, data]), REQUEST_LOGITS (`LogitsRequest` -> `LogitsHeader`, [data]) and
REQUEST_LENS (`LensRequest` -> `LensReply`, [ids, probs]), REQUEST_VALUE_NORMS (`ValueNormsRequest` ->
`ValueNormsReply`, [norms, totals, thumbnails]), REQUEST_QUERIES_KEYS (`QueriesKeysRequest` ->
`QueriesKeysReply`, [q, k] or [q, k, unrotated q, unrotated k]) and REQUEST_FLOW (`FlowRequest` ->
`FlowReply`, no buffers); Python asks a view for a picture with REQUEST_EXPORT (`ExportRequest` ->
`ExportReply`, [the file], at most EXPORT_MAX_BYTES). ``_meta["analyses"]`` says which of the last three a
kind can answer.
"""

# No `from __future__ import annotations` here: TypedDict reads NotRequired[...] from evaluated annotations.

import sys
from collections.abc import Mapping
from typing import Final, Literal

from ..core import attention
from ..core.tiles import THUMBNAIL_SIZE
from .schema_analyses import (  # value weighting, queries and keys, the flow: their own section
    ANALYSIS_FLOW,
    ANALYSIS_QK,
    ANALYSIS_VALUE,
    FLOW_EDGE_TYPES,
    MAX_FLOW_EDGES,
    MIN_FLOW_THRESHOLD,
    REQUEST_FLOW,
    REQUEST_QUERIES_KEYS,
    REQUEST_VALUE_NORMS,
    FlowReply,
    FlowRequest,
    QueriesKeysReply,
    QueriesKeysRequest,
    ValueNormsReply,
    ValueNormsRequest,
)
from .schema_internals import Generation, Hidden, Internals, LensInfo, Logits, LogitsHeader
from .schema_interventions import (  # interventions and patching: their own section
    ABLATIONS,
    REQUEST_ABLATE,
    REQUEST_EDIT,
    REQUEST_RESTORE,
    AblateRequest,
    Baseline,
    EditRequest,
    HeadRef,
    InterventionInfo,
    PatchingInfo,
    PatchingResult,
    RerunReply,
    Reruns,
    RestoreRequest,
    WeightEdit,
)
from .schema_panels import CensusPanel, ComparisonPanel, TrainingKind, TrainingPanel, UserView

if sys.version_info >= (3, 11):
    from typing import NotRequired, TypedDict
else:  # pragma: no cover - Python 3.10
    from typing_extensions import NotRequired, TypedDict

WIRE_VERSION = 3
#: Bytes of binary data (values, scales, top-k, thumbnails, statistics, masks) sent with the widget.
EAGER_BUDGET = 8 * 1024 * 1024
#: Largest whole-layer reply (Python only): beyond it a coarser pool must be asked for.
MAX_LAYER_BYTES = 256 * 1024 * 1024
#: Largest exact block (cells per head) one REQUEST_BLOCK gets.
MAX_BLOCK_CELLS = 1024 * 1024
#: Keys per query row in a top-k block computed from full weights (Python only).
TOP_K = attention.DENSE_TOP_K
#: Positions one REQUEST_LENS may ask for.
MAX_LENS_POSITIONS = 256

DTYPE = "float32"
DTYPE_UINT8 = "uint8"
DTYPE_TOPK = "topk"

LAYOUT_DENSE = "dense"
LAYOUT_LOWER = "lower"

MASK_NONE = "none"
MASK_CAUSAL = "causal"
MASK_EXPLICIT = "explicit"

META_IMAGE = "image"

REQUEST_LAYER = "get_layer"
REQUEST_BLOCK = "get_block"
REQUEST_TOPK = "get_topk"
REQUEST_LOGITS = "get_logits"
REQUEST_LENS = "get_lens"
REQUEST_EXPORT = "export"
REPLY: Final = "reply"
REPLY_ERROR: Final = "error"

EXPORT_FORMATS = ("png", "svg")
#: Largest export a view sends to the kernel (the server drops browser messages over 10 MiB).
EXPORT_MAX_BYTES = 9 * 1024 * 1024
#: Best inputs a census sends per head and pattern (`CensusPanel`).
CENSUS_BEST = 3

#: Constants only Python reads; every other upper-case constant here is declared by js/src/wire-schema.ts too.
PYTHON_ONLY = frozenset({"MAX_LAYER_BYTES", "TOP_K"})


class RequestError(ValueError):
    """A request the kernel cannot answer; the message says why and what to ask instead."""


# -- the traits ------------------------------------------------------------------------------------

class TokenSequence(TypedDict):
    """One token sequence ("input", "source", "target")."""

    text: list[str]
    special: list[bool]
    #: 0 for text A, 1 for text B of a sentence pair.
    segment: list[int]
    #: Token ids, -1 where unknown.
    ids: list[int]


class Thumbnails(TypedDict):
    size: int
    data: bytes


class Kind(TypedDict):
    """One attention kind ("self", "encoder", "decoder", "cross") and where its tokens come from."""

    name: str
    layers: int
    heads: int
    queries: str
    keys: str
    mask: str
    #: Captured reduced: whole layers exist only pooled over tiles of at least `pool` tokens.
    streamed: bool
    pool: int
    thumbnails: Thumbnails
    mask_data: NotRequired[bytes]
    stats: NotRequired[dict[str, bytes]]
    head_types: NotRequired[list[list[str]]]
    #: Statistics users registered (`tx_magic.register_statistic`): float32 (layer, head) per name.
    user_stats: NotRequired[dict[str, bytes]]


class Image(TypedDict):
    png: bytes
    width: int
    height: int
    rows: int
    cols: int
    sequence: str
    first: int


class Meta(TypedDict):
    """The ``_meta`` trait."""

    version: int
    model: str
    warnings: list[str]
    sequences: dict[str, TokenSequence]
    kinds: list[Kind]
    image: NotRequired[Image]
    intervention: NotRequired[InterventionInfo]
    #: Per kind, the analyses the kernel can compute on request (ANALYSIS_*): value weighting, queries
    #: and keys, the flow. Absent or empty: none (arrays, hook captures, a report without them).
    analyses: NotRequired[dict[str, list[str]]]


class BlockHeader(TypedDict):
    """A value block without its bytes: what a REQUEST_LAYER or REQUEST_BLOCK reply's content holds."""

    kind: str
    layer: int
    dtype: str
    shape: list[int]
    pool: int
    q0: int
    k0: int
    #: LAYOUT_DENSE (absent: the same) or LAYOUT_LOWER (row r holds its first r + 1 values).
    layout: NotRequired[str]


class ValueBlock(BlockHeader):
    data: bytes
    scale: NotRequired[bytes]


class TopKHeader(TypedDict):
    """A top-k block without its bytes: a REQUEST_TOPK reply's content."""

    kind: str
    layer: int
    dtype: str
    shape: list[int]


class TopKBlock(TopKHeader):
    index: bytes
    data: bytes


# -- requests and replies --------------------------------------------------------------------------

class LayerRequest(TypedDict):
    kind: str
    layer: int
    dtype: NotRequired[str]
    pool: NotRequired[int]


class BlockRequest(TypedDict):
    kind: str
    layer: int
    q0: int
    q1: int
    k0: int
    k1: int


class TopKRequest(TypedDict):
    kind: str
    layer: int


class LogitsRequest(TypedDict):
    position: int


class LensRequest(TypedDict):
    positions: list[int]


class LensReply(TypedDict):
    positions: list[int]
    k: int


class ExportRequest(TypedDict):
    format: str
    scale: NotRequired[float]


class ExportReply(TypedDict):
    format: str


#: What a reply's content may be.
ReplyContent = BlockHeader | TopKHeader | LogitsHeader | LensReply | ExportReply | ValueNormsReply | \
    QueriesKeysReply | FlowReply | RerunReply


class Request(TypedDict):
    """One request, either way: ``payload`` is the request type's object (`LayerRequest`, ...)."""

    type: str
    id: str
    payload: Mapping[str, object]


class Reply(TypedDict):
    type: Literal["reply"]
    id: str
    content: ReplyContent
    #: Milliseconds the kernel spent computing the reply (the widget's replies): the renderer's link meter
    #: takes it off the time from request to reply.
    kernel_ms: NotRequired[float]


class ErrorReply(TypedDict):
    type: Literal["error"]
    id: str
    message: str


#: Every object of the wire by name: the names js/src/wire-schema.ts's SCHEMA uses too.
SCHEMA: dict[str, type] = {cls.__name__: cls for cls in (
    Meta, TokenSequence, Kind, Thumbnails, Image, BlockHeader, ValueBlock, TopKHeader, TopKBlock, Internals, Hidden,
    LensInfo, LogitsHeader, Logits, Generation, LayerRequest, BlockRequest, TopKRequest, LogitsRequest, LensRequest,
    LensReply, ExportRequest, ExportReply, Request, Reply, ErrorReply, ValueNormsRequest, ValueNormsReply,
    QueriesKeysRequest, QueriesKeysReply, FlowRequest, FlowReply, HeadRef, WeightEdit, InterventionInfo, Reruns,
    PatchingResult, PatchingInfo, AblateRequest, EditRequest, RestoreRequest, RerunReply, Baseline,
    UserView, CensusPanel, ComparisonPanel, TrainingKind, TrainingPanel)}


def keys_of(cls: type) -> tuple[str, ...]:
    """A wire object's keys in the order its TypedDict declares them (the encoders write them so)."""
    return tuple(cls.__annotations__)


IMAGE_KEYS = keys_of(Image)
GENERATION_KEYS = keys_of(Generation)

__all__ = [
    "CENSUS_BEST", "DTYPE", "DTYPE_TOPK", "DTYPE_UINT8", "EAGER_BUDGET", "EXPORT_FORMATS", "EXPORT_MAX_BYTES",
    "GENERATION_KEYS", "IMAGE_KEYS", "LAYOUT_DENSE", "LAYOUT_LOWER", "MASK_CAUSAL", "MASK_EXPLICIT", "MASK_NONE",
    "MAX_BLOCK_CELLS", "MAX_LAYER_BYTES", "MAX_LENS_POSITIONS", "META_IMAGE", "PYTHON_ONLY", "REPLY", "REPLY_ERROR",
    "REQUEST_BLOCK", "REQUEST_EXPORT", "REQUEST_LAYER", "REQUEST_LENS", "REQUEST_LOGITS", "REQUEST_TOPK", "SCHEMA",
    "THUMBNAIL_SIZE", "TOP_K", "WIRE_VERSION", "BlockHeader", "BlockRequest", "CensusPanel", "ComparisonPanel",
    "ErrorReply", "ExportReply", "ExportRequest", "Generation", "Hidden", "Image", "Internals", "Kind",
    "LayerRequest", "LensInfo", "LensReply", "LensRequest", "Logits", "LogitsHeader", "LogitsRequest", "Meta",
    "Reply", "ReplyContent", "Request", "RequestError", "Thumbnails", "TokenSequence", "TopKBlock", "TopKHeader",
    "TopKRequest", "TrainingKind", "TrainingPanel", "UserView", "ValueBlock", "keys_of"
]
__all__ += [  # the section on value weighting, queries and keys, the flow (schema_analyses.py)
    "ANALYSIS_FLOW", "ANALYSIS_QK", "ANALYSIS_VALUE", "FLOW_EDGE_TYPES", "MAX_FLOW_EDGES", "MIN_FLOW_THRESHOLD",
    "REQUEST_FLOW", "REQUEST_QUERIES_KEYS", "REQUEST_VALUE_NORMS", "FlowReply", "FlowRequest", "QueriesKeysReply",
    "QueriesKeysRequest", "ValueNormsReply", "ValueNormsRequest",
]
__all__ += [  # the section on interventions and patching (schema_interventions.py)
    "ABLATIONS", "REQUEST_ABLATE", "REQUEST_EDIT", "REQUEST_RESTORE", "AblateRequest", "Baseline", "EditRequest",
    "HeadRef", "InterventionInfo", "PatchingInfo", "PatchingResult", "RerunReply", "Reruns", "RestoreRequest",
    "WeightEdit",
]
