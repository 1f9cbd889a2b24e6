"""The forecasting method: Holt's linear exponential smoothing (level + trend), one step ahead.

For readings x1..xn taken at a steady interval:

    level1 = x1, trend1 = 0
    forecast(t+1) = level_t + trend_t
    level_t = ALPHA * x_t + (1 - ALPHA) * (level_{t-1} + trend_{t-1})
    trend_t = BETA * (level_t - level_{t-1}) + (1 - BETA) * trend_{t-1}

It runs over the region's last `FORECASTING_WINDOW` readings in sequence order, recomputed on every
reading, so the forecast does not depend on the order readings arrive in. The smoothing damps the
sensor's noise, the trend follows the daily cycle. Error on the simulated sensor: docs/architecture.md
(`evaluate` below computes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

ALPHA = 0.2
BETA = 0.02


def holt(values: list[float], alpha: float = ALPHA, beta: float = BETA) -> tuple[float, list[float]]:
    """The next value's forecast, and the one-step-ahead errors (actual - forecast) along `values`."""
    if not values:
        raise ValueError("no values to forecast from")
    level, trend = values[0], 0.0
    errors = []
    for value in values[1:]:
        errors.append(value - (level + trend))
        previous = level
        level = alpha * value + (1 - alpha) * (level + trend)
        trend = beta * (level - previous) + (1 - beta) * trend
    return level + trend, errors


@dataclass(frozen=True)
class Evaluation:
    readings: int
    mae: float
    rmse: float
    naive_mae: float


def evaluate(
    *,
    region: str,
    base_temperature_c: float,
    start: datetime,
    step: timedelta,
    count: int,
    window: int,
    alpha: float = ALPHA,
    beta: float = BETA,
) -> Evaluation:
    """Forecast every reading of the simulated sensor from the `window` before it, as the service does."""
    from weather import sensors

    series = [sensors.read(region, base_temperature_c, start + i * step)[0] for i in range(count)]
    errors, naive = [], []
    for i in range(window, count):
        forecast, _ = holt(series[i - window : i], alpha, beta)
        errors.append(series[i] - forecast)
        naive.append(series[i] - series[i - 1])
    n = len(errors)
    return Evaluation(
        readings=n,
        mae=sum(abs(e) for e in errors) / n,
        rmse=(sum(e * e for e in errors) / n) ** 0.5,
        naive_mae=sum(abs(e) for e in naive) / n,
    )
