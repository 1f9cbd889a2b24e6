"""The simulated sensor: a deterministic function of region and time, so that runs and tests repeat.

Temperature: the region's mean, a daily cycle of ±6 °C peaking at 15:00 UTC, a slower ±2 °C swing
over about 3 days, and noise (σ = 0.4 °C). Rain: showers that pass every few hours, above 0 mm/h
about a third of the time and now and then above the alert threshold.
"""

import hashlib
import math
import random
from datetime import datetime


def _noise(region: str, at: datetime, salt: str) -> random.Random:
    seed = hashlib.sha256(f"{region}|{int(at.timestamp())}|{salt}".encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))


def read(region: str, base_temperature_c: float, at: datetime) -> tuple[float, float]:
    """(temperature °C, rain mm/h) of `region` at `at`."""
    hours = at.timestamp() / 3600
    phase = (int(hashlib.sha256(region.encode()).hexdigest(), 16) % 1000) / 1000 * 2 * math.pi
    temperature = (
        base_temperature_c
        + 6 * math.sin(2 * math.pi * (hours - 9) / 24)
        + 2 * math.sin(2 * math.pi * hours / 71 + phase)
        + _noise(region, at, "t").gauss(0, 0.4)
    )
    shower = 14 * math.sin(2 * math.pi * hours / 5.3 + phase) - 7 + _noise(region, at, "r").gauss(0, 1.0)
    return round(temperature, 2), round(max(0.0, shower), 2)
