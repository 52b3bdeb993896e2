"""A small portfolio of industrial sites in France for the demo."""

from __future__ import annotations

import csv
from pathlib import Path

# (id, name, lat, lon, weight MW-scale, group): chemical and metal plants of the Rhône-Alpes /
# Provence corridor. One region keeps the simulated grids small and the demo fast.
DEMO_SITES = [
    ("saint-fons", "Saint-Fons", 45.71, 4.85, 2.5, "lyon"),
    ("pierre-benite", "Pierre-Bénite", 45.70, 4.82, 1.5, "lyon"),
    ("feyzin", "Feyzin", 45.67, 4.86, 3.0, "lyon"),
    ("roussillon", "Roussillon", 45.37, 4.81, 2.0, "isere"),
    ("pont-de-claix", "Le Pont-de-Claix", 45.12, 5.70, 1.5, "isere"),
    ("jarrie", "Jarrie", 45.09, 5.75, 1.0, "isere"),
    ("tavaux", "Tavaux", 47.04, 5.40, 3.0, "jura"),
    ("saint-auban", "Château-Arnoux-Saint-Auban", 44.07, 5.99, 1.0, "provence"),
]


def write_demo_sites(path: Path) -> Path:
    """Write the demo sites CSV (id, name, lat, lon, weight, group) atomically; returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "name", "lat", "lon", "weight", "group"])
        writer.writerows(DEMO_SITES)
    tmp.replace(path)
    return path
