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
