"""`Generation`: which tokens of a trace a causal LM generated, and how."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Generation:
    """Which tokens of a trace were generated, and how."""

    #: Tokens of the prompt; tokens from here on were generated.
    prompt_length: int
    #: Ids of the generated tokens, in order.
    new_ids: tuple[int, ...]
    #: False: greedy (argmax each step); True: sampled with `temperature`, `top_k`, `top_p`, `seed`.
    sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None

    @property
    def steps(self) -> int:
        return len(self.new_ids)
