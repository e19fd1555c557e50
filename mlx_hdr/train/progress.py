"""What a training run will cost: said before it starts, estimated from its first steps,
and a progress bar with the total and the time left."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from tqdm import tqdm

ESTIMATE_AFTER = 3  # timed steps before the run's time is estimated (the first is not timed)


def format_duration(seconds: float) -> str:
    """``"2 h 05 min"``, ``"4 min 10 s"`` or ``"12 s"``."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def plural(n: int, word: str) -> str:
    """``"1 step"``, ``"2 steps"``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def _data(data) -> str:
    """``"from DATA, "`` for the plan line; "" where the run was given its batches instead."""
    if not data:
        return ""
    return f"from {data if isinstance(data, str) else ' + '.join(map(str, data))}, "


def plan_line(cfg, start: int) -> str:
    """The run in one line, before it starts: steps, batch, crops, losses, folder."""
    total = cfg.end_step
    capped = cfg.total_steps < cfg.epochs * cfg.steps_per_epoch
    cap = f", capped by max_steps {cfg.max_steps}" if capped else ""
    if total < cfg.total_steps:
        cap += f", stopping at step {total} of the schedule's {cfg.total_steps}"
    elif cfg.stop_at > total:  # taken for the end: said, not run past
        cap += f", stop_at {cfg.stop_at} lies past its last step"
    losses = "L1 + LPIPS (VGG16)" if cfg.lpips_weight > 0 else "L1"
    later = total - start > ESTIMATE_AFTER + 1  # a shorter run is over before an estimate
    estimate = f"; time estimate after {ESTIMATE_AFTER + 1} steps" if later else ""
    return (
        f"training {plural(total - start, 'step')} (to step {total}: "
        f"{plural(cfg.epochs, 'epoch')} x {plural(cfg.steps_per_epoch, 'step')}{cap}), "
        f"batch {cfg.batch_size}, {cfg.crop} px crops, "
        f"{losses}, {_data(cfg.data)}into {cfg.run_dir}{estimate}"
    )


def estimate_line(seconds_per_step: float, steps_left: int) -> str:
    """The time the rest of the run will take at ``seconds_per_step``."""
    return (
        f"{seconds_per_step:.2f} s/step: about {format_duration(seconds_per_step * steps_left)} "
        f"for the {plural(steps_left, 'step')} left (plus validation each epoch)"
    )


class StepClock:
    """Times the steps of one run (the first, which compiles and warms up, is not timed),
    says once what the whole run will take, and drives a tqdm bar (total, ETA)."""

    def __init__(self, total: int, start: int, say: Callable[[str], None], bar: bool):
        self.total, self.start, self.say = total, start, say
        self.n, self.seconds = 0, 0.0
        self.bar = tqdm(
            total=total, initial=start, desc="train", unit="step", disable=not bar, leave=False
        )
        self.last = time.perf_counter()

    def tick(self, step: int) -> float:
        """Step ``step`` (0-based) has finished: its duration in seconds."""
        now = time.perf_counter()
        dt, self.last = now - self.last, now
        if step > self.start:
            self.n, self.seconds = self.n + 1, self.seconds + dt
            if self.n == ESTIMATE_AFTER and self.total - step - 1 > 0:
                self.say(estimate_line(self.seconds_per_step, self.total - step - 1))
        self.bar.update(1)
        return dt

    def restart(self) -> None:
        """Time from now: what ran since the last step (validation) is not step time."""
        self.last = time.perf_counter()

    @property
    def seconds_per_step(self) -> float:
        """The mean time of the timed steps; NaN before any."""
        return self.seconds / self.n if self.n else math.nan

    def close(self) -> None:
        """Remove the bar."""
        self.bar.close()


STALLED_STEPS = 20  # steps of a gradient of exactly 0 after which a run says it stopped learning


def stalled(cfg) -> str:
    """Why a run's gradient has been exactly 0 for ``STALLED_STEPS`` steps, as far as its
    recipe ``cfg`` tells."""
    said = f"a zero gradient for {STALLED_STEPS} steps: the network no longer learns"
    if cfg.train_only == "exposure":  # the exposure branch learns from photos with a white
        return f"{said} (no photo of the batches carries an EXIF white?)"
    return f"{said} (a collapsed branch: a longer warm-up? a lower lr?)"
