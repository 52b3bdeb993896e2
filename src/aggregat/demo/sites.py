"""A small portfolio of industrial sites in France for the demo."""

from __future__ import annotations

import csv
from pathlib import Path

# (id, name, lat, lon, weight MW-scale, group): chemical, steel and glass towns.
DEMO_SITES = [
    ("tavaux", "Tavaux", 47.04, 5.40, 3.0, "east"),
    ("dombasle", "Dombasle-sur-Meurthe", 48.62, 6.35, 2.0, "east"),
    ("saint-fons", "Saint-Fons", 45.71, 4.85, 2.5, "south"),
    ("fos", "Fos-sur-Mer", 43.44, 4.94, 4.0, "south"),
    ("dunkerque", "Dunkerque", 51.03, 2.37, 5.0, "north"),
    ("le-havre", "Le Havre", 49.49, 0.11, 3.0, "north"),
    ("pont-de-claix", "Le Pont-de-Claix", 45.12, 5.70, 1.5, "south"),
    ("salindres", "Salindres", 44.17, 4.16, 1.0, "south"),
    ("chalampe", "Chalampé", 47.82, 7.54, 2.0, "east"),
    ("lacq", "Lacq", 43.41, -0.62, 2.5, "south"),
    ("roussillon", "Roussillon", 45.37, 4.81, 1.5, "south"),
    ("carling", "Carling", 49.17, 6.72, 1.0, "east"),
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
