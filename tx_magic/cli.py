"""The command line: ``tx-magic report`` writes self-contained HTML reports; ``tx-magic census`` a head census.

    tx-magic report --text "What is the capital of France?" --output report.html
    tx-magic report --model gpt2 --texts-file texts.txt --output reports/      # one report per text
    tx-magic report --texts-file texts.jsonl --one-file --output all.html     # one report, a text selector
    tx-magic census --model smollm2.gguf --output census.html                  # every head on every pattern

Exit status: 0 when everything was written, 1 when some texts failed (the others are written;
the message names the lines and why), 2 for usage errors (bad option, unwritable output,
unknown model, empty texts file), always as one line without a traceback.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from .analysis import census as run_census
from .capturing import capture as run_model
from .capturing.load import load_model
from .core.errors import TxMagicError
from .report.batch import BatchItem, EmptyTextsFile, Failure, describe, read_texts, run_each
from .report.budget import size_text
from .report.census import DEFAULT_TEXTS, render_census
from .report.html import DEFAULT_MAX_BYTES, ReportText, render_report

PROG = "tx-magic"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command line input: printed as one line, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: sys.argv[1:]); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return census(args) if args.command == "census" else report(args)
    except (UsageError, EmptyTextsFile) as exc:
        _say(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("interrupted")
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG,
                                     description="See inside transformer models: reports from the command line.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    rep = commands.add_parser(
        "report", help="write self-contained HTML reports (open offline, anywhere)",
        description="Run a model on texts and write self-contained HTML reports of every layer's and head's "
                    "attention. A report opens from a file, offline: the renderer and the data are inside it.",
    )
    rep.add_argument("-m", "--model", default=None,
                     help="hub id (cached or reachable), local folder or .gguf file "
                          "(default: the embedded all-MiniLM-L6-v2)")
    texts = rep.add_mutually_exclusive_group(required=True)
    texts.add_argument("--text", help="the text to explain")
    texts.add_argument("--texts-file", type=pathlib.Path, metavar="FILE",
                       help='one text per line, or JSON lines with "text" (and "pair") or "source" and "target"')
    rep.add_argument("--target", help="decoder text of an encoder-decoder model (with --text)")
    rep.add_argument("--pair", help="a second text, encoded with --text as a sentence pair")
    rep.add_argument("-o", "--output", required=True, type=pathlib.Path,
                     help="the report file; with --texts-file, a folder (or NAME.html, written as NAME-001.html ...) "
                          "for one report per text, or the file with --one-file")
    rep.add_argument("--one-file", action="store_true",
                     help="with --texts-file: one report holding every text, with a text selector")
    rep.add_argument("--title", help="title of the report (default: the model's name)")
    rep.add_argument("--max-tokens", type=_positive_int, metavar="N", help="truncate each text to N tokens")
    rep.add_argument("--max-bytes", type=_size, default=DEFAULT_MAX_BYTES, metavar="SIZE",
                     help=f"size budget of each report, e.g. 5000000 or 50MB (default {size_text(DEFAULT_MAX_BYTES)}); "
                          "layers beyond it are left out, and the report says which")
    progress = rep.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="show a progress bar (default: when stderr is a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    add_census(commands)
    return parser


def add_census(commands: Any) -> None:
    """The `census` command's options."""
    cen = commands.add_parser(
        "census", help="score every head on every pattern over many inputs; write an offline HTML report",
        description="Run a model on generated probes (repeated random tokens, duplicated tokens, natural text, long "
                    "filler) and your texts, score every head on every pattern of the library (induction, duplicate, "
                    "previous, first/sink, self, local, broad), label the heads that clearly show one, and write a "
                    "self-contained report: the Census tab and the inputs that show the heads best.",
    )
    cen.add_argument("-m", "--model", default=None, help="as for report (default: the embedded all-MiniLM-L6-v2)")
    cen.add_argument("--texts-file", type=pathlib.Path, metavar="FILE", help="your texts too, as for report")
    cen.add_argument("--no-probes", action="store_true", help="only the texts of --texts-file")
    cen.add_argument("--seed", type=int, default=0, help="seed of the generated probes (default 0)")
    cen.add_argument("--kind", help='attention kind to score (default the first; "cross" for alignment)')
    cen.add_argument("--max-tokens", type=_positive_int, metavar="N", help="truncate each input to N tokens")
    cen.add_argument("-o", "--output", required=True, type=pathlib.Path, help="the report file")
    cen.add_argument("--texts", type=_positive_int, default=DEFAULT_TEXTS, metavar="N",
                     help=f"inputs the report holds in full (default {DEFAULT_TEXTS}): those that show the most "
                          "labelled heads best")
    cen.add_argument("--title", help="title of the report")
    cen.add_argument("--max-bytes", type=_size, default=DEFAULT_MAX_BYTES, metavar="SIZE",
                     help=f"size budget of the report (default {size_text(DEFAULT_MAX_BYTES)})")
    progress = cen.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="show a progress bar (default: when stderr is a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false")


def census(args: argparse.Namespace) -> int:
    """The `census` command: load the model, run the probes and texts, write the report, print the labels."""
    texts: list[Any] = []
    if args.texts_file is not None:
        items, unreadable = _read(args.texts_file)
        for failure in unreadable:
            _say(f"line {failure.line}: {failure.message} (skipped)")
        texts = [{"text": i.text, "target": i.target} if i.target else i.text for i in items]
    if args.no_probes and not texts:
        raise UsageError("--no-probes needs texts: give --texts-file")
    output = args.output.expanduser()
    _check_folder(output.parent)
    model, tokenizer, name = _load(args.model)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        result = run_census(model, tokenizer, texts, probes=not args.no_probes, kind=args.kind, seed=args.seed,
                            max_tokens=args.max_tokens, progress=show)
        result.model_name = name
        rendered = render_census(result, texts=args.texts, title=args.title, max_bytes=args.max_bytes)
        output.write_text(rendered.html, encoding="utf-8")
    except (TxMagicError, OSError) as exc:
        _say(f"error: no census written: {exc}")
        return EXIT_FAILED
    for label, reason in result.skipped:
        _say(f"skipped {label}: {reason}")
    layers, heads = result.shape
    found = {p: result.heads(p) for p in result.patterns}
    summary = ", ".join(f"{len(v)} {p}" for p, v in found.items() if v) or "no head clearly shows a pattern"
    _out(f"wrote {output} ({size_text(len(rendered.html.encode()))}): {layers * heads} heads over "
         f"{len(result.inputs)} inputs; {summary}")
    for pattern, where in found.items():
        if where and pattern not in ("broad", "local"):
            _out(f"  {pattern}: " + ", ".join(f"L{layer}.H{head}" for layer, head in where))
    return EXIT_OK


def report(args: argparse.Namespace) -> int:
    """The `report` command: check the inputs, load the model, run the texts, write the reports."""
    if args.texts_file is not None and (args.target is not None or args.pair is not None):
        raise UsageError("--target and --pair go with --text; in a texts file, use JSON lines with "
                         "\"pair\" or \"source\"/\"target\"")
    if args.one_file and args.texts_file is None:
        raise UsageError("--one-file goes with --texts-file")
    if args.text is not None:
        if not args.text.strip():
            raise UsageError("the text is empty: give some text with --text")
        items: list[BatchItem] = [BatchItem(0, args.text, pair=args.pair, target=args.target)]
        unreadable: list[Failure] = []
    else:
        items, unreadable = _read(args.texts_file)
    outputs = _outputs(args, items)
    model, tokenizer, name = _load(args.model)
    encoder_decoder = bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))

    def capture(item: BatchItem) -> ReportText:
        pair, target = item.pair, item.target
        if target is not None and not encoder_decoder and pair is None:
            pair, target = target, None  # a second text of a model that is no encoder-decoder: a sentence pair
        trace = run_model(model, tokenizer, item.text, pair=pair, target=target, max_tokens=args.max_tokens,
                          name=name)
        for warning in trace.warnings:
            _say(f"{_where(item)}{warning}")
        return ReportText(trace, item.text, pair=pair, target=target, label=describe(item) if item.line else None)

    if args.one_file or args.text is not None:
        done, failures = run_each(items, capture, progress=args.progress)
        if done:
            try:
                _write([text for _, text in done], outputs[0], args)
            except (TxMagicError, OSError) as exc:
                _say(f"error: no report written: {exc}")
                return EXIT_FAILED
    else:
        _, failures = run_each(items, lambda item: _write([capture(item)], outputs[item.line], args),
                               progress=args.progress)
    if args.text is not None and failures:
        _say(f"error: {failures[0].message}")
        return EXIT_FAILED
    return _summary(unreadable + failures, len(items) + len(unreadable))


def _read(path: pathlib.Path) -> tuple[list[BatchItem], list[Failure]]:
    try:
        return read_texts(path)
    except OSError as exc:
        raise UsageError(f"cannot read the texts file {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"the texts file {str(path)!r} is not UTF-8 text ({exc.reason})") from None


def _outputs(args: argparse.Namespace, items: Sequence[BatchItem]) -> dict[int, pathlib.Path]:
    """Where each report goes (keyed by line; 0 for a single report), after checking it can be written."""
    out: pathlib.Path = args.output.expanduser()
    if args.text is not None or args.one_file:
        path = out / "report.html" if out.is_dir() else out
        _check_folder(path.parent)
        return {0: path}
    if out.suffix.lower() in {".html", ".htm"} and not out.is_dir():
        folder, stem, suffix = out.parent, out.stem, out.suffix
    else:
        folder, stem, suffix = out, "report", ".html"
        if not folder.exists():
            _check_folder(folder.parent)
            try:
                folder.mkdir()
            except OSError as exc:
                raise UsageError(f"cannot create the output folder {str(folder)!r}: {exc.strerror or exc}") from None
    _check_folder(folder)
    width = max(3, len(str(max((i.line for i in items), default=0))))
    return {i.line: folder / f"{stem}-{i.line:0{width}d}{suffix}" for i in items}


def _check_folder(folder: pathlib.Path) -> None:
    """UsageError unless a file can be created in `folder` (tried for real: permissions, read-only disks)."""
    where = str(folder) if str(folder) else "."
    if not folder.exists():
        raise UsageError(f"cannot write there: the folder {where!r} does not exist")
    if not folder.is_dir():
        raise UsageError(f"cannot write there: {where!r} is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tx-magic-", suffix=".tmp"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write in the folder {where!r}: {exc.strerror or exc}") from None


def _load(name: str | None) -> tuple[Any, Any, str]:
    """(model, tokenizer, display name), or UsageError saying why the model cannot be had."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # tx-magic says what matters (truncation) itself
    hf_logging.disable_progress_bar()
    try:
        loaded = load_model(name)
    except TxMagicError as exc:
        raise UsageError(str(exc)) from None
    return loaded.model, loaded.tokenizer, loaded.name


def _write(texts: list[ReportText], path: pathlib.Path, args: argparse.Namespace) -> pathlib.Path:
    title = args.title or (f"tx_magic: {texts[0].trace.model_name} · {args.texts_file.name}"
                           if args.one_file else None)
    rendered = render_report(texts, title=title, max_bytes=args.max_bytes)
    path.write_text(rendered.html, encoding="utf-8")
    left_out, reduced = any(rendered.left_out), any(rendered.notices)
    note = (f"; some layers left out to stay under {size_text(args.max_bytes)} (the report says which)" if left_out
            else f"; weights stored 8-bit or pooled to stay under {size_text(args.max_bytes)} (the report says how)"
            if reduced else "")
    _out(f"wrote {path} ({size_text(len(rendered.html.encode()))}, {len(texts)} text{'s' * (len(texts) > 1)}{note})")
    return path


def _summary(failures: list[Failure], total: int) -> int:
    if not failures:
        return EXIT_OK
    written = "the others were written" if len(failures) < total else "nothing was written"
    _say(f"{len(failures)} of {total} texts failed ({written}):")
    for failure in sorted(failures, key=lambda f: f.line):
        where = f"line {failure.line}" if failure.line else "the text"
        _out(f"  {where}: {failure.message}", sys.stderr)
    return EXIT_FAILED


def _where(item: BatchItem) -> str:
    return f"line {item.line}: " if item.line else ""


def _say(message: str) -> None:
    _out(f"{PROG}: {message}", sys.stderr)


def _out(line: str, file: Any = None) -> None:
    """Print a line without breaking a progress bar on the terminal."""
    from tqdm import tqdm

    tqdm.write(line, file=file or sys.stdout)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9}


def _size(text: str) -> int:
    """A byte count: 5000000, 5e6, 500kB, 20MB, 1GB (powers of 1000)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*", text.lower())
    if not match or match.group(2) not in _UNITS:
        raise argparse.ArgumentTypeError(f"expected a size such as 20000000 or 20MB, got {text!r}")
    value = int(float(match.group(1)) * _UNITS[match.group(2)])
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


if __name__ == "__main__":
    sys.exit(main())
