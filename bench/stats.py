"""Pure helpers: settings parsing, summaries (median, min, max), percentiles, growth exponents."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

SCALE_PATTERN = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")
MAX_ORDERS_PER_DAY = 4_999_999  # the generator's limit (localdev.generator.IDS_PER_DAY // 2)


class BenchError(Exception):
    """A setting or a measurement that stops the benchmark, said in one line."""


def parse_scales(text: str) -> list[int]:
    """``"10k,100k,1M"`` -> ``[10000, 100000, 1000000]`` (sorted, without repeats)."""
    scales = set()
    for item in (part.strip() for part in text.split(",")):
        match = SCALE_PATTERN.match(item)
        if not match:
            raise BenchError(f"BENCH_SCALE: {item!r} is not a count like 10k, 100k, 1M or 50000")
        number, unit = match.groups()
        value = float(number) * {"": 1, "k": 1_000, "m": 1_000_000}[unit.lower()]
        if value != int(value) or not 1 <= value <= MAX_ORDERS_PER_DAY:
            raise BenchError(f"BENCH_SCALE: {item!r} must be a whole number of orders from 1 to {MAX_ORDERS_PER_DAY}")
        scales.add(int(value))
    return sorted(scales)


def parse_repeat(text: str) -> int:
    """``BENCH_REPEAT``: how many times each figure is measured (1 to 20)."""
    if not text.strip().isdigit() or not 1 <= int(text) <= 20:
        raise BenchError(f"BENCH_REPEAT must be a whole number from 1 to 20, got {text!r}")
    return int(text)


def label(orders: int) -> str:
    """``1000000`` -> ``"1M"``, ``10000`` -> ``"10k"``."""
    if orders % 1_000_000 == 0:
        return f"{orders // 1_000_000}M"
    if orders % 1_000 == 0:
        return f"{orders // 1_000}k"
    return str(orders)


@dataclass(frozen=True)
class Summary:
    """A figure measured several times."""

    median: float
    min: float
    max: float
    runs: list[float]

    def as_dict(self, digits: int = 3) -> dict:
        values = asdict(self)
        return {key: _round(value, digits) for key, value in values.items()}


def _round(value, digits: int):
    if isinstance(value, list):
        return [round(v, digits) for v in value]
    return round(value, digits)


def summarize(values: Sequence[float]) -> Summary:
    """Median, min and max of ``values`` (at least one)."""
    if not values:
        raise BenchError("nothing was measured")
    return Summary(statistics.median(values), min(values), max(values), list(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, interpolated linearly between ranks."""
    if not values:
        raise BenchError("no values for a percentile")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def fit_exponent(sizes: Sequence[float], values: Sequence[float]) -> float | None:
    """k in ``value ~ size**k``: the least-squares slope of log(value) on log(size).

    None when fewer than two distinct sizes were measured (one point has no slope).
    """
    points = [(math.log(s), math.log(v)) for s, v in zip(sizes, values, strict=True) if s > 0 and v > 0]
    if len({x for x, _ in points}) < 2:
        return None
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in points)
    variance = sum((x - mean_x) ** 2 for x, _ in points)
    return covariance / variance
