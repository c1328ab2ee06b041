"""`%explain` and `%%explain`: a thin shell over `tx_magic.explain`.

Its defaults are configurable (traitlets, as IPython's own options)::

    %config ExplainMagics.model = "my_model"     # a notebook variable, hub id or folder
    %config ExplainMagics.max_tokens = 128
    %config ExplainMagics.layer = 3

or in ``ipython_config.py``: ``c.ExplainMagics.model = "..."``. ``-m``, ``-t``, ``-l`` and
``--max-tokens`` still override them for one call.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import shlex
from typing import Any

import traitlets
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .api import explain
from .capturing.adapters import unwrap_model
from .capturing.load import load_model
from .core.errors import ModelLoadError, TxMagicError
from .report import ReportText, render_report
from .report.budget import size_text

#: What an option looks like (-x, --word, --word=value): an unknown one is an error, not text.
_OPTION_LIKE = re.compile(r"--?[A-Za-z][\w-]*(=.*)?")
#: A line of its own that splits a %%explain body into source and target.
TARGET_SEPARATOR = "---"


@magics_class
class ExplainMagics(Magics):
    """The `%explain` line and cell magics; their defaults are options (`%config ExplainMagics`)."""

    model = traitlets.Unicode(
        None, allow_none=True,
        help="Model %explain runs without -m: a notebook variable's name, a hub id, a folder or a .gguf file "
             "(None: the embedded all-MiniLM-L6-v2).").tag(config=True)
    tokenizer = traitlets.Unicode(
        None, allow_none=True,
        help="Tokenizer of the configured model (used when neither -m nor -t is given): a notebook variable's "
             "name, hub id or folder (None: the model's own).",
    ).tag(config=True)
    max_tokens = traitlets.Int(
        None, allow_none=True,
        help="Truncate texts to this many tokens without --max-tokens (None: the model's limit).").tag(config=True)
    layer = traitlets.Int(0, help="Layer shown first without -l (0-based).").tag(config=True)

    @traitlets.validate("max_tokens")
    def _valid_max_tokens(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and value < 1:
            raise traitlets.TraitError(f"ExplainMagics.max_tokens must be at least 1 (or None), got {value}.")
        return value

    @traitlets.validate("layer")
    def _valid_layer(self, proposal: Any) -> Any:
        if proposal["value"] < 0:
            raise traitlets.TraitError(f"ExplainMagics.layer must be 0 or more, got {proposal['value']}.")
        return proposal["value"]

    @magic_arguments()
    @argument("-m", "--model", default=None,
              help="Hub id, local folder, or the name of a notebook variable holding a model "
                   "(default: %%config ExplainMagics.model, else the embedded all-MiniLM-L6-v2).")
    @argument("-t", "--tokenizer", default=None,
              help="Name of a variable holding the tokenizer, or a hub id/folder (default: the model's own).")
    @argument("-l", "--layer", type=int, default=None,
              help="Layer shown first (0-based; default: %%config ExplainMagics.layer, 0).")
    @argument("--head", type=int, default=None, help="Head shown in the matrix (default: mean of all heads).")
    @argument("--target", default=None,
              help="Decoder text of an encoder-decoder model (or, in %%%%explain, a line --- before it).")
    @argument("--pair", default=None,
              help="A second text, encoded with the first as a sentence pair (in %%%%explain: a line --- "
                   "between the two, or exactly two lines, for models that are not encoder-decoders).")
    @argument("--max-tokens", type=int, default=None,
              help="Truncate the text to this many tokens (default: %%config ExplainMagics.max_tokens).")
    @argument("--ids", default=None, metavar="IDS",
              help="Token ids to run instead of a text, comma-separated: --ids 101,2023,102.")
    @argument("--image", default=None, metavar="PATH",
              help="An image file for a ViT-style model (-t: its image processor): patches become the tokens.")
    @argument("--generate", type=int, default=None, metavar="N",
              help="Causal LMs: continue the text by up to N tokens (greedy), then show every step.")
    @argument("--sample", action="store_true", help="With --generate: sample instead of greedy.")
    @argument("--temperature", type=float, default=1.0, help="With --generate --sample: the temperature.")
    @argument("--top-k", type=int, default=None, help="With --generate --sample: draw from the k likeliest tokens.")
    @argument("--top-p", type=float, default=None, help="With --generate --sample: nucleus sampling threshold.")
    @argument("--seed", type=int, default=None, help="With --generate --sample: random seed, for repeatable samples.")
    @argument("--ablate", default=None, metavar="HEADS",
              help="Ablate these heads, LAYER.HEAD comma-separated (--ablate 5.1,5.5): their output becomes zero "
                   "(or, with --ablation mean, its mean over the text's positions); Alt-click a head in the widget.")
    @argument("--ablation", default="zero", choices=("zero", "mean"), help="With --ablate: zero or mean ablation.")
    @argument("--edit", default=None, metavar="EDITS",
              help="Set attention weights, LAYER.HEAD.QUERY.KEY=WEIGHT comma-separated (--edit 2.3.5.0=0 blocks key 0 "
                   "of query 5 in L2H3); the rest of each row is rescaled to sum to 1.")
    @argument("--patch", default=None, metavar="CORRUPTED",
              help="Activation patching against this corrupted text (same token length): an Effects tab of every "
                   "head, exact and gradient; with --answer (and --wrong).")
    @argument("--answer", default=None, help="With --patch: the token whose logit the metric reads (' Mary').")
    @argument("--wrong", default=None, help="With --patch: the metric is logit(answer) - logit(wrong).")
    @argument("--by", default="head", choices=("head", "layer", "position"),
              help="With --patch: patch each head, each layer's attention block, or each layer at each position.")
    @argument("--weighting", choices=("raw", "value"), default="raw",
              help="raw attention, or value-weighted rows (||a_ij f(x_j)||, Kobayashi et al. 2020) in every view.")
    @argument("--save", default=None, metavar="PATH",
              help="Also write a self-contained HTML report of this run to PATH (opens offline, anywhere).")
    @argument("text", nargs="*", help="The text to explain (in %%%%explain: the cell body).")
    @line_cell_magic
    def explain(self, line: str, cell: str | None = None) -> Any:
        """Run a transformer on TEXT and show its attention as linked arc and matrix views.

            %explain The animal didn't cross the street because it was too tired.
            %explain -m gpt2 -l 5 The cat sat on the mat.
            w = %explain -m my_model -t my_tokenizer Some text
            %explain --save report.html The cat sat on the mat.
            %explain -m gpt2 --generate 20 The capital of France is
            %explain --ids 101,2023,2003,102
            %explain -m vit -t processor --image cat.png
            %explain -m smollm2.gguf --ablate 5.1,5.5 When Mary and John went to the store, John gave a drink to
            %explain -m smollm2.gguf --patch "{corrupted}" --answer " Mary" --wrong " John" {clean}

            %%explain -m t5-small
            The source sentence.
            ---
            The target sentence.
        """
        argv, text = split_options(line, self.explain)
        args = parse_options(self.explain.parser, argv)
        if args.model is None:  # the configured model, with the configured tokenizer (which goes with it only)
            args.model = self.model
            args.tokenizer = args.tokenizer if args.tokenizer is not None else self.tokenizer
        args.layer = args.layer if args.layer is not None else self.layer
        args.max_tokens = args.max_tokens if args.max_tokens is not None else self.max_tokens
        if args.save:
            _check_save_path(args.save)
        second = None
        if cell is not None:
            text, second = split_target(cell)
        try:
            ids = parse_ids(args.ids) if args.ids is not None else None
            model, tokenizer = self._resolve(args.model, args.tokenizer, need_tokenizer=ids is None,
                                             image=args.image is not None)
            encoder_decoder = bool(getattr(getattr(unwrap_model(model).model, "config", None), "is_encoder_decoder",
                                           False)) if model is not None and not isinstance(model, str) else None
            target, pair = args.target, args.pair
            if second is not None:
                # The second part is the target of an encoder-decoder, else text B of a pair.
                if encoder_decoder is None:
                    encoder_decoder = _is_encoder_decoder_name(model)
                if encoder_decoder:
                    target = target if target is not None else second
                else:
                    pair = pair if pair is not None else second
            if (args.sample or args.seed is not None or args.top_k is not None or args.top_p is not None) \
                    and args.generate is None:
                raise UsageError("--sample, --top-k, --top-p and --seed go with --generate N.")
            sampling = {"generate": args.generate, "sample": args.sample, "temperature": args.temperature,
                        "top_k": args.top_k, "top_p": args.top_p, "seed": args.seed} \
                if args.generate is not None else {}
            if (args.answer is not None or args.wrong is not None) and args.patch is None:
                raise UsageError('--answer and --wrong go with --patch "CORRUPTED TEXT".')
            widget = explain(model, tokenizer, text, target=target, pair=pair, layer=args.layer, head=args.head,
                             max_tokens=args.max_tokens, ids=ids, image=args.image, weighting=args.weighting,
                             **sampling, **intervention_options(args))
        except (TxMagicError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        for warning in widget.trace.warnings:
            print(f"tx_magic: {warning}")
        if args.save:
            _save(ReportText(widget.trace, text, pair=pair, target=target), args.save)
        return widget

    def _resolve(self, model: str | None, tokenizer: str | None, *, need_tokenizer: bool = True,
                 image: bool = False) -> tuple[Any, Any]:
        """Names of notebook variables become the objects; anything else is left for `explain` to load."""
        namespace = self.shell.user_ns if self.shell is not None else {}
        model_obj = namespace.get(model, model) if model else None
        tok_obj = namespace.get(tokenizer, tokenizer) if tokenizer else None
        if isinstance(tok_obj, str):
            tok_obj = _load_tokenizer(tok_obj)
        if tok_obj is None and model_obj is not None and not isinstance(model_obj, str):
            tok_obj = unwrap_model(model_obj).tokenizer  # a sentence-transformers, nnsight, pipeline... object's own
        if model_obj is not None and not isinstance(model_obj, str) and tok_obj is None:
            source = getattr(getattr(model_obj, "config", None), "_name_or_path", "")
            if not source and not need_tokenizer:
                return model_obj, None  # token ids given: they show as ids
            if not source:
                what = "image processor" if image else "tokenizer"
                raise ModelLoadError(f"Give the {what} of {model!r} with -t NAME_OF_VARIABLE.")
            tok_obj = _load_image_processor(source) if image else _load_tokenizer(source)
        return model_obj, tok_obj


def parse_heads(value: str) -> list[tuple[int, int]]:
    """``5.1,5.5`` -> [(5, 1), (5, 5)]."""
    heads = []
    for part in value.split(","):
        fields = part.strip().split(".")
        if len(fields) != 2 or not all(f.strip().isdigit() for f in fields):
            raise UsageError(f"--ablate takes LAYER.HEAD pairs separated by commas (--ablate 5.1,5.5), got {part!r}.")
        heads.append((int(fields[0]), int(fields[1])))
    return heads


def parse_edits(value: str) -> list[tuple[int, int, int, int, float]]:
    """``2.3.5.0=0,2.3.6.1=0.5`` -> [(2, 3, 5, 0, 0.0), (2, 3, 6, 1, 0.5)]."""
    edits = []
    for part in value.split(","):
        where, _, weight = part.strip().partition("=")
        fields = where.split(".")
        try:
            if len(fields) != 4 or not all(f.isdigit() for f in fields):
                raise ValueError
            layer, head, query, key = (int(f) for f in fields)
            edits.append((layer, head, query, key, float(weight)))
        except ValueError:
            raise UsageError("--edit takes LAYER.HEAD.QUERY.KEY=WEIGHT separated by commas (--edit 2.3.5.0=0), "
                             f"got {part!r}.") from None
    return edits


def intervention_options(args: Any) -> dict[str, Any]:
    """explain()'s ablate / edit / patch keywords from the magic's options."""
    out: dict[str, Any] = {}
    if args.ablate is not None:
        out.update(ablate=parse_heads(args.ablate), ablation=args.ablation)
    if args.edit is not None:
        out["edit"] = parse_edits(args.edit)
    if args.patch is not None:
        out.update(patch=args.patch, answer=args.answer, wrong=args.wrong, by=args.by)
    return out


def split_options(line: str, magic: Any) -> tuple[list[str], str]:
    """Split `line` into its leading options (as argv) and the free text after them.

    Only the leading options are tokenized (shell-style), so the text keeps its quotes
    and apostrophes as typed. A lone `--` ends the options.
    """
    parser = magic.parser
    takes_value = {s for a in parser._actions if a.nargs is None and a.option_strings for s in a.option_strings}
    flags = {s for a in parser._actions if a.option_strings for s in a.option_strings}
    lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    consumed, expect_value = 0, False
    argv: list[str] = []
    try:
        while True:
            start = _skip_space(line, consumed)
            token = lexer.get_token()
            if token is None or token == lexer.eof:
                consumed = len(line)
                break
            end = lexer.instream.tell() if hasattr(lexer.instream, "tell") else len(line)
            if expect_value:
                expect_value = False
            elif token == "--":
                return argv, line[end:].strip()
            elif token.split("=", 1)[0] in flags:
                expect_value = token in takes_value
            elif _OPTION_LIKE.fullmatch(token):
                raise UsageError(f"Unknown option {token.split('=', 1)[0]} (see %explain?); "
                                 "for a text that starts with a dash, put -- before it.")
            else:
                return argv, line[start:].strip()
            argv.append(token)
            consumed = end
    except ValueError:  # an unbalanced quote in the free text: options end before it
        pass
    return argv, line[consumed:].strip()


def parse_options(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """`parser.parse_args(argv)` with every default set on the namespace itself. argparse leaves out a default
    when the namespace already has the attribute, and some libraries give every object one: after
    ``import nnsight`` every object has a ``.save`` method, which would stand in for --save's None."""
    defaults = {a.dest: a.default for a in parser._actions if a.dest not in (argparse.SUPPRESS, "help")}
    return parser.parse_args(argv, namespace=argparse.Namespace(**defaults))


def split_target(cell: str) -> tuple[str, str | None]:
    """Split a %%explain body into (first, second): at a line `---`, else when it is exactly two
    non-empty lines; otherwise (body, None). The second part is a target or text B of a pair."""
    lines = cell.strip("\n").splitlines()
    for i, text in enumerate(lines):
        if text.strip() == TARGET_SEPARATOR:
            return "\n".join(lines[:i]).strip(), "\n".join(lines[i + 1:]).strip()
    nonempty = [line.strip() for line in lines if line.strip()]
    if len(nonempty) == 2:
        return nonempty[0], nonempty[1]
    return cell.strip(), None


def _is_encoder_decoder_name(model: str | None) -> bool:
    """Whether the model that `explain` will load for `model` (a name, or None) is an encoder-decoder."""
    loaded = load_model(model)
    return bool(getattr(loaded.model.config, "is_encoder_decoder", False))


def _check_save_path(path: str) -> None:
    """Fail before running the model when the report could not be written there."""
    folder = pathlib.Path(path).expanduser().parent
    if not folder.is_dir():
        raise UsageError(f"Cannot save the report to {path!r}: the folder {str(folder)!r} does not exist.")


def _save(text: ReportText, path: str) -> None:
    """Write the report of this run; a path that cannot be written is one line, not a traceback."""
    target = pathlib.Path(path).expanduser()
    try:
        rendered = render_report(text)
        target.write_text(rendered.html, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"Could not write the report to {path!r}: {exc.strerror or exc}") from None
    except TxMagicError as exc:
        raise UsageError(str(exc)) from None
    left_out = " Some layers were left out to keep it small: the report says which." if rendered.notices[0] else ""
    print(f"tx_magic: wrote {target} ({size_text(len(rendered.html.encode()))}).{left_out}")


def _skip_space(line: str, pos: int) -> int:
    while pos < len(line) and line[pos].isspace():
        pos += 1
    return pos


def parse_ids(text: str) -> list[int]:
    """Token ids from `--ids`: whole numbers separated by commas (or spaces)."""
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        ids = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"--ids takes whole numbers separated by commas, e.g. --ids 101,2023,102; got {text!r}.") \
            from None
    if not ids:
        raise UsageError("--ids is empty: give at least one token id, e.g. --ids 101,2023,102.")
    return ids


def _load_image_processor(name: str) -> Any:
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(name)
    except Exception as exc:  # noqa: BLE001 - any failure becomes one line saying what to pass instead
        raise ModelLoadError(f"Could not load the image processor {name!r}: pass one with -t NAME_OF_VARIABLE. "
                             f"({exc})") from None


def _load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as exc:  # noqa: BLE001 - any failure becomes one line saying what to pass instead
        raise ModelLoadError(f"Could not load the tokenizer {name!r}: pass one with -t NAME_OF_VARIABLE. ({exc})") \
            from None
