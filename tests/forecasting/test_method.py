from datetime import UTC, datetime, timedelta

import pytest

from forecasting.method import evaluate, holt


def test_holt_follows_a_constant_and_a_straight_line() -> None:
    assert holt([5.0] * 10) == (5.0, [0.0] * 9)
    forecast, _ = holt([0.5 * i for i in range(200)])
    assert forecast == pytest.approx(100.0, abs=0.05)  # the trend is learnt: the next value of the line
    with pytest.raises(ValueError):
        holt([])


@pytest.mark.parametrize("region,base", [("coast", 17.0), ("north", 11.0)])
def test_on_the_simulated_sensor_it_beats_repeating_the_last_reading(region: str, base: float) -> None:
    # The figures in docs/architecture.md: 10 s readings (the demo's schedule), a 60-reading window.
    result = evaluate(
        region=region,
        base_temperature_c=base,
        start=datetime(2026, 1, 5, tzinfo=UTC),
        step=timedelta(seconds=10),
        count=3000,
        window=60,
    )
    assert result.readings == 2940
    assert result.mae < 0.36 < result.naive_mae  # the sensor's noise (σ 0.4 °C) bounds any method near 0.32
