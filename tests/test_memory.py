"""The memory guard (tx_magic.memory): estimate before capturing, then capture in full, streamed, or refuse."""

from __future__ import annotations

import pytest
import transformers as tf

from tx_magic import memory as budget

GIB = 1024 ** 3


class Model:
    def __init__(self, config):
        self.config = config


SMOL = Model(tf.LlamaConfig(num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, hidden_size=576))
GPT2 = Model(tf.GPT2Config())


def test_shape_is_read_from_any_config_naming():
    assert budget.Shape.of(SMOL) == budget.Shape(30, 9, 3, 64)
    assert budget.Shape.of(GPT2) == budget.Shape(12, 12, 12, 64)
    assert budget.Shape.of(object()) is None


def test_full_estimate_is_the_float32_weights_twice_plus_work():
    shape = budget.Shape(12, 12, 12, 64)
    assert budget.full_bytes(shape, 1024) == 2 * 12 * 12 * 1024 * 1024 * 4 + 3 * 12 * 1024 * 1024 * 4


def test_short_inputs_are_captured_in_full():
    assert budget.plan_capture(SMOL, 256, streamable=True, available=16 * GIB).mode == budget.FULL


def test_long_inputs_stream_within_4_gb():
    plan = budget.plan_capture(SMOL, 8192, streamable=True, available=16 * GIB)
    assert plan.mode == budget.STREAMED and plan.estimate < 4 * GIB
    assert budget.full_bytes(budget.Shape.of(SMOL), 8192) > 100 * GIB


def test_too_long_is_refused_with_what_fits():
    with pytest.raises(budget.MemoryBudgetError) as err:
        budget.plan_capture(SMOL, 65536, streamable=True, available=16 * GIB)
    message = str(err.value)
    assert "65536 tokens" in message and "max_tokens=" in message
    fits = int(message.split("max_tokens=")[1].split()[0])
    assert budget.plan_capture(SMOL, fits, streamable=True, available=16 * GIB).mode == budget.STREAMED


def test_little_free_memory_refuses_what_would_otherwise_fit():
    with pytest.raises(budget.MemoryBudgetError, match="GB free"):
        budget.plan_capture(GPT2, 1024, streamable=False, available=1 * GIB)


def test_unknown_layout_is_not_guessed():
    assert budget.plan_capture(Model(object()), 10_000, streamable=False).mode == budget.FULL


def test_available_memory_is_read():
    free = budget.available_bytes()
    assert free is None or free > 0
