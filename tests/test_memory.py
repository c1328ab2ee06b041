"""The memory guard (tx_magic.memory): estimate before capturing, then capture in full, streamed, or refuse."""

from __future__ import annotations

import pytest
import transformers as tf

from tx_magic.capturing import memory

GIB = 1024 ** 3


class Model:
    def __init__(self, config):
        self.config = config


SMOL = Model(tf.LlamaConfig(num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, hidden_size=576))
GPT2 = Model(tf.GPT2Config())


def test_shape_is_read_from_any_config_naming():
    assert memory.Shape.of(SMOL) == memory.Shape(30, 9, 3, 64)
    assert memory.Shape.of(GPT2) == memory.Shape(12, 12, 12, 64)
    assert memory.Shape.of(object()) is None


def test_full_estimate_is_the_float32_weights_twice_plus_work():
    shape = memory.Shape(12, 12, 12, 64)
    assert memory.full_bytes(shape, 1024) == 2 * 12 * 12 * 1024 * 1024 * 4 + 3 * 12 * 1024 * 1024 * 4


def test_short_inputs_are_captured_in_full():
    assert memory.plan_capture(SMOL, 256, streamable=True, available=16 * GIB).mode == memory.FULL


def test_long_inputs_stream_within_4_gb():
    plan = memory.plan_capture(SMOL, 8192, streamable=True, available=16 * GIB)
    assert plan.mode == memory.STREAMED and plan.estimate < 4 * GIB
    assert memory.full_bytes(memory.Shape.of(SMOL), 8192) > 100 * GIB


LONG = Model(tf.LlamaConfig(num_hidden_layers=16, num_attention_heads=16, num_key_value_heads=4, head_dim=64,
                            hidden_size=256, max_position_embeddings=32768))


def test_32k_tokens_of_a_16_layer_16_head_model_stream_within_8_gb():
    shape = memory.Shape.of(LONG)
    assert shape == memory.Shape(16, 16, 4, 64)
    n = 32768
    kept = 16 * 4 * (16 * n * 64 + 4 * n * 64          # queries, keys
                     + 16 * (512 * 512 + 32 * 32)       # 64 x 64-token tiles, 32 x 32 thumbnails
                     + 16 * n * (2 * 8 + 9 + 1))        # top 8 values and keys, 9 statistics, lse per row
    assert memory.streamed_kept_bytes(shape, n) == kept
    chunk = 16 * 128 * n * 4                             # 128 rows of 16 heads x 32768 keys, float32
    work = 4 * n * 64 * 4 * (16 + 2 * 4)                 # the model's q, k, v and output of one layer
    moved = 16 * n * 64 * 4                              # one layer's queries, twice while the result gathers them
    mask = n * n                                         # the trace's causal mask, one byte a cell
    assert memory.streamed_bytes(shape, n) == kept + 2 * chunk + chunk // 64 + work + moved + mask
    plan = memory.plan_capture(LONG, n, streamable=True, available=16 * GIB)
    assert plan.mode == memory.STREAMED and 5 * GIB < plan.estimate < 7 * GIB
    assert memory.STREAMED_LIMIT == 8 * GIB


def test_what_a_streamed_capture_keeps_is_what_was_estimated():
    import torch

    from tx_magic.capturing import streamed

    torch.manual_seed(0)
    model = tf.LlamaForCausalLM(tf.LlamaConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                               hidden_size=32, intermediate_size=64, vocab_size=100)).eval()
    ids = [int(i) % 100 for i in range(70)]
    with streamed.recording(model, 70, tile=streamed.tile_for(70, memory.OVERVIEW_TILES), top_k=memory.TOP_K,
                            token_ids=ids) as rec, torch.inference_mode():
        model(input_ids=torch.tensor([ids]), use_cache=False)
    assert rec.result().nbytes == memory.streamed_kept_bytes(memory.Shape(2, 4, 2, 8), 70)


def test_too_long_is_refused_with_what_fits():
    with pytest.raises(memory.MemoryBudgetError) as err:
        memory.plan_capture(SMOL, 65536, streamable=True, available=16 * GIB)
    message = str(err.value)
    assert "65536 tokens" in message and "max_tokens=" in message
    fits = int(message.split("max_tokens=")[1].split()[0])
    assert memory.plan_capture(SMOL, fits, streamable=True, available=16 * GIB).mode == memory.STREAMED


def test_little_free_memory_refuses_what_would_otherwise_fit():
    with pytest.raises(memory.MemoryBudgetError, match="GB free"):
        memory.plan_capture(GPT2, 1024, streamable=False, available=1 * GIB)


def test_unknown_layout_is_not_guessed():
    assert memory.plan_capture(Model(object()), 10_000, streamable=False).mode == memory.FULL


def test_available_memory_is_read():
    free = memory.available_bytes()
    assert free is None or free > 0
