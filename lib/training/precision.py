"""Mixed precision on CUDA: autocast to bfloat16 where the GPU supports it, else float16 with loss scaling."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Precision:
    """How a training step computes: `dtype` None is full float32; `scaler` only with float16."""

    dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The forward pass's context: CUDA autocast to `dtype`, or nothing at full precision."""
        if self.dtype is None:
            return contextlib.nullcontext()
        import torch

        return torch.autocast("cuda", dtype=self.dtype)


FULL = Precision()


def choose_precision(mixed_precision: bool, device: torch.device, log: Callable[[str], None]) -> Precision:
    """The precision for `device`: mixed only when asked for and on CUDA (on CPU it is ignored, said once)."""
    if not mixed_precision:
        return FULL
    if device.type != "cuda":
        log(f"mixed_precision ignored on {device.type}: autocast is used on CUDA only; training in float32")
        return FULL
    import torch

    if torch.cuda.is_bf16_supported():
        return Precision(dtype=torch.bfloat16)
    return Precision(dtype=torch.float16, scaler=torch.amp.GradScaler("cuda"))
