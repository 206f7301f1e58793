"""What a training run reports: after every step, and at the end (no torch needed)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepReport:
    """Progress after one optimizer step (what a progress bar shows)."""

    name: str
    step: int
    total_steps: int
    epoch: int
    loss: float
    lr: float
    tokens: int
    target_tokens: int
    seconds: float
    """Training seconds of this session (a resumed run restarts the clock)."""
    session_tokens: int
    checkpoint: str | None

    @property
    def tokens_per_second(self) -> float:
        return self.session_tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class LoopResult:
    """What one adapter's training did."""

    steps: int
    total_steps: int
    resumed_from_step: int
    tokens: int
    target_tokens: int
    seconds: float
    session_tokens: int
    first_loss: float | None
    last_loss: float | None

    @property
    def tokens_per_second(self) -> float:
        return self.session_tokens / self.seconds if self.seconds > 0 else 0.0
