"""A tiny inline SVG chart of run durations, drawn on the server (no script, no assets)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Sparkline:
    width: int
    height: int
    points: str  # "x,y x,y ..." for an SVG <polyline>
    dots: list  # [(x, y, failed)] one per run
    longest_ms: int

    @property
    def empty(self):
        return not self.dots


def sparkline(durations_ms, *, failed=None, width=120, height=28, pad=3):
    """Scale durations (oldest first) into a `width` x `height` box; 0 ms sits on the floor."""
    failed = failed or [False] * len(durations_ms)
    longest = max(durations_ms, default=0) or 1
    step = (width - 2 * pad) / max(len(durations_ms) - 1, 1)
    dots = []
    for index, (duration, is_failure) in enumerate(zip(durations_ms, failed, strict=True)):
        x = pad + index * step
        y = height - pad - (height - 2 * pad) * (duration / longest)
        dots.append((round(x, 1), round(y, 1), is_failure))
    points = " ".join(f"{x},{y}" for x, y, _ in dots)
    return Sparkline(width, height, points, dots, max(durations_ms, default=0))
