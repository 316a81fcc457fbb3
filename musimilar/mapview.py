"""What a map shows: points with names and labels (a JSON payload), as a self-contained HTML page or a PNG.

The payload is columnar (one list per field) so a 100k-track map stays a few megabytes; labels are coded (a list
of distinct values and one small integer per point) for the same reason.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from musimilar.browse import TrackEntry
from musimilar.errors import MusimilarError
from musimilar.maplayout import MapLayout

COLOUR_KEYS = ("folder", "genre", "label", "artist", "album")  # labels a map can be coloured by
NAME_LENGTH = 60  # characters of a track's name shown on hover
COORDINATE_DECIMALS = 4
PNG_SIZE_INCHES = (8.0, 6.0)
PNG_DPI = 120
MAX_LEGEND_VALUES = 20


@dataclass
class MapPayload:
    """The points of a map, ready for the page: `as_dict()` is the JSON of `/api/map`."""

    layout: MapLayout
    names: list[str]
    labels: dict[str, dict[str, list[Any]]]  # key -> {"values": [distinct], "codes": [per point, -1 = none]}

    def as_dict(self) -> dict[str, Any]:
        xy = np.round(self.layout.xy.astype(np.float64), COORDINATE_DECIMALS)
        return {
            "method": self.layout.method,
            "key": self.layout.key,
            "caption": self.layout.caption,
            "count": len(self.layout.track_ids),
            "track_ids": self.layout.track_ids.tolist(),
            "x": xy[:, 0].tolist(),
            "y": xy[:, 1].tolist(),
            "names": self.names,
            "labels": self.labels,
        }


def map_payload(layout: MapLayout, tracks: dict[int, TrackEntry]) -> MapPayload:
    """Names and coded labels for each point of `layout`; points whose track left the catalog are dropped."""
    present = np.array([int(t) in tracks for t in layout.track_ids.tolist()], dtype=bool)
    if not present.all():
        layout = MapLayout(layout.method, layout.track_ids[present], layout.xy[present], layout.variance, layout.key)
    entries = [tracks[int(t)] for t in layout.track_ids.tolist()]
    names = [_name(entry)[:NAME_LENGTH] for entry in entries]
    labels: dict[str, dict[str, list[Any]]] = {}
    for key in COLOUR_KEYS:
        values: dict[str, int] = {}
        codes = [values.setdefault(entry.labels[key], len(values)) if key in entry.labels else -1 for entry in entries]
        if values:
            labels[key] = {"values": list(values), "codes": codes}
    return MapPayload(layout, names, labels)


def _name(entry: TrackEntry) -> str:
    artist = entry.labels.get("artist")
    stem = os.path.splitext(os.path.basename(entry.path))[0]  # Path(...).stem, a fifth of the time: 100k per map
    return f"{artist} – {stem}" if artist and artist.lower() not in stem.lower() else stem


def write_map_html(payload: MapPayload, out: Path, colour_by: str | None) -> None:
    """A single HTML file that opens from disk: the plotting library and the points are inlined."""
    from musimilar.home import atomic_write_text

    template = _static_text("map.html")
    plotly = _static_text("vendor/plotly-gl2d.min.js")
    page = (
        template.replace("/*PLOTLY*/", plotly.replace("</script", "<\\/script"))
        .replace("/*MAP*/null", json.dumps(payload.as_dict(), ensure_ascii=True).replace("</", "<\\/"))
        .replace("/*COLOUR*/null", json.dumps(colour_by))
    )
    atomic_write_text(out, page)


def write_map_png(payload: MapPayload, out: Path, colour_by: str | None) -> None:
    """A still picture of the map for reports (needs matplotlib, the optional extra `musimilar[map]`)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MusimilarError("a PNG map needs matplotlib: pip install 'musimilar[map]'") from None
    from musimilar.home import atomic_path

    xy = payload.layout.xy
    figure, axes = plt.subplots(figsize=PNG_SIZE_INCHES, dpi=PNG_DPI)
    coded = payload.labels.get(colour_by) if colour_by else None
    if coded is None:
        axes.scatter(xy[:, 0], xy[:, 1], s=4, linewidths=0, alpha=0.7)
    else:
        codes = np.asarray(coded["codes"])
        for code, value in enumerate(coded["values"][:MAX_LEGEND_VALUES]):
            where = codes == code
            axes.scatter(xy[where, 0], xy[where, 1], s=4, linewidths=0, alpha=0.8, label=str(value))
        rest = codes >= MAX_LEGEND_VALUES
        if rest.any() or (codes < 0).any():
            other = rest | (codes < 0)
            axes.scatter(xy[other, 0], xy[other, 1], s=4, linewidths=0, alpha=0.5, c="grey", label="other")
        axes.legend(fontsize=7, markerscale=3, loc="best", title=colour_by)
    axes.set_title(f"musimilar map ({payload.layout.method.upper()}, {len(xy)} tracks)")
    axes.set_xticks([])
    axes.set_yticks([])
    with atomic_path(out) as temp:
        figure.savefig(temp, format="png", bbox_inches="tight")
    plt.close(figure)


def _static_text(name: str) -> str:
    return resources.files("musimilar.serve").joinpath("static", name).read_text(encoding="utf-8")


@dataclass
class MapExport:
    """What `musimilar map` wrote."""

    out: str
    method: str
    count: int
    colour_by: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"out": self.out, "method": self.method, "count": self.count, "colour_by": self.colour_by}


def export_map(home_root: Path, out: Path, method: str = "pca", colour_by: str | None = None) -> MapExport:
    """The library's map as a self-contained HTML page or, when `out` ends in .png, a PNG picture."""
    from musimilar.browse import get_tracks, open_readonly
    from musimilar.embeddings import load_embeddings
    from musimilar.errors import NotReadyError
    from musimilar.maplayout import library_layout

    if out.suffix.lower() not in (".html", ".htm", ".png"):
        raise MusimilarError(f"{out}: the map is written as .html or .png")
    table = load_embeddings(home_root / "embeddings")
    if table is None or len(table) == 0:
        raise NotReadyError(f"{home_root}: no embeddings yet, so no map (run `musimilar embed`)")
    layout = library_layout(home_root, table, method)
    connection = open_readonly(home_root / "catalog.sqlite")
    try:
        payload = map_payload(layout, get_tracks(connection, layout.track_ids.tolist()))
    finally:
        connection.close()
    if colour_by is not None and colour_by not in payload.labels:
        known = ", ".join(payload.labels) or "none"
        raise MusimilarError(f"--by {colour_by}: no track has this label (the library has: {known})")
    if out.suffix.lower() == ".png":
        write_map_png(payload, out, colour_by)
    else:
        write_map_html(payload, out, colour_by)
    return MapExport(str(out), layout.method, len(payload.layout.track_ids), colour_by)
