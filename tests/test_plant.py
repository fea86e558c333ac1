"""Geometry and pump hydraulics against the plant facts."""

import numpy as np
import pytest

from kernel.physics import LevelVolume, PlantPhysics, PumpHydraulics
from kernel.site import Site


@pytest.mark.parametrize(("level", "volume"), [(0.5, 375), (2.0, 6750), (5.0, 53250), (7.2, 111725),
                                               (8.0, 133725), (14.1, 225850)])
def test_official_table_points(site: Site, level: float, volume: float) -> None:
    geo = LevelVolume(site.tunnel)
    assert geo.volume(level) == pytest.approx(volume, rel=1e-3)
    assert geo.level(volume) == pytest.approx(level, abs=1e-3)


def test_surface_area_matches_plant_facts(site: Site) -> None:
    geo = LevelVolume(site.tunnel)
    assert geo.area_m2(2.0) == pytest.approx(8000, rel=0.02)
    assert geo.area_m2(7.0) == pytest.approx(27500, rel=0.01)


def test_sump_volumes_map_to_unique_levels(site: Site) -> None:
    geo = LevelVolume(site.tunnel)
    levels = [geo.level(v) for v in (0, 100, 200, 350)]
    assert levels == sorted(levels) and levels[0] == 0 and levels[-1] == pytest.approx(0.4)


def test_flow_falls_faster_than_frequency(site: Site) -> None:
    """Static head dominates: 4.4 % less speed loses much more than 4.4 % of flow."""
    hyd = PumpHydraulics(site.pump_types["large"], site.discharge_level_m)
    q50, q478 = hyd.flow_m3h(np.array([50.0, 47.8]), np.array(1.5))
    assert q478 / q50 < 0.93


def test_below_shut_off_head_pump_delivers_nothing(site: Site) -> None:
    hyd = PumpHydraulics(site.pump_types["large"], site.discharge_level_m)
    assert hyd.flow_m3h(np.array([30.0]), np.array(1.0))[0] == 0.0


def test_higher_tunnel_level_gives_more_flow(site: Site) -> None:
    hyd = PumpHydraulics(site.pump_types["small"], site.discharge_level_m)
    low, high = hyd.flow_m3h(np.array([49.0, 49.0]), np.array([0.5, 6.0]))
    assert high > low > 0


def test_grid_lookup_agrees_with_direct_solution(site: Site) -> None:
    physics = PlantPhysics.from_site(site)
    hyd = physics.hydraulics["large"]
    flow, power = physics.grids["large"].lookup(np.array([48.93]), 1.77)
    direct = hyd.flow_m3h(np.array([48.93]), np.array(1.77))
    assert flow[0] == pytest.approx(direct[0], rel=0.005)
    assert power[0] == pytest.approx(hyd.power_kw(np.array([48.93]), direct)[0], rel=0.005)
