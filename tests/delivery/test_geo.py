import pytest

from delivery.geo import haversine_m


def test_haversine_known_distances() -> None:
    # One degree of latitude is about 111.2 km on the mean sphere; Paris to London about 343.5 km.
    assert haversine_m(0, 0, 1, 0) == pytest.approx(111_195, rel=1e-4)
    assert haversine_m(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343_560, rel=2e-3)
    assert haversine_m(10, 20, 10, 20) == 0
    assert haversine_m(0, 0, 0, 180) == pytest.approx(20_015_115, rel=1e-4)  # antipodes: no domain error
