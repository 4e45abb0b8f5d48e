"""A self-contained HTML QC report per study, and the slice thumbnails QC shows.

The report is one ``.html`` file (thumbnails embedded as base64 PNG, CSS inline, no
scripts, nothing fetched) that opens in any browser and can be mailed or archived:

* counts: slices, reviewed, passed, failed, per reason and per reviewer;
* per scan, a grid of every slice (the chosen average with the label contours in the
  SCORE paper's colours, as in its Figure 2), each marked with its decision in force and
  the automatic suggestions;
* the decisions in force (status, reason, reviewer, time, comment) and the suggestions.

:func:`thumbnail_rgb` draws one slice tile; the napari QC widget uses it too.

Examples
--------
>>> import numpy as np
>>> dseg = np.zeros((40, 40), np.uint8); dseg[10:30, 10:30] = 1; dseg[14:26, 14:26] = 2
>>> tile = thumbnail_rgb(np.random.default_rng(0).random((40, 40)), dseg, size=64)
>>> tile.shape, tile.dtype.name
((64, 64, 3), 'uint8')
"""

from __future__ import annotations

import base64
import html
import io
import time
from collections.abc import Generator
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from score_gui.labels import LABEL_COLORS, LESION_VALUE
from score_gui.progress import Progress

CONTOURS = (
    # (structure values, colour): outer to inner, so inner borders are drawn on top.
    ((1, 2, 3, 4, 5, 6), LABEL_COLORS[1]),   # canal border, gold
    ((2, 3, 4, 5, 6), LABEL_COLORS[1]),      # canal/cord border, gold
    ((3, 4, 5, 6), "#b07a4a"),               # GM/WM border, brown (lightened to read on MRI)
    ((4,), LABEL_COLORS[4]),                 # anterior horns, red
    ((5,), "#4f74d9"),                       # posterior horns, blue (lightened)
    ((6,), "#3fa35a"),                       # gray commissure, green (lightened)
)
"""Contours drawn on thumbnails, in the paper's colours (dark ones lightened for contrast)."""

STATUS_COLORS = {"pass": "#2e9d4b", "fail": "#d0312d", "unreviewed": "#777777"}


def _hex_rgb(color: str) -> np.ndarray:
    color = color.lstrip("#")
    return np.array([int(color[i:i + 2], 16) for i in (0, 2, 4)], np.uint8)


def crop_box(dseg: np.ndarray | None, shape: tuple[int, int], margin: float = 0.6,
             min_size: int = 24) -> tuple[slice, slice]:
    """A square around the canal (labels) with ``margin`` of its size added; whole slice without labels."""
    if dseg is None or not np.asarray(dseg).any():
        return slice(0, shape[0]), slice(0, shape[1])
    rows = np.flatnonzero(np.asarray(dseg).any(axis=1))
    cols = np.flatnonzero(np.asarray(dseg).any(axis=0))
    centre = ((rows[0] + rows[-1]) / 2, (cols[0] + cols[-1]) / 2)
    half = max(rows[-1] - rows[0], cols[-1] - cols[0], min_size) * (1 + margin) / 2
    half = min(half, max(shape) / 2)
    r0 = int(np.clip(round(centre[0] - half), 0, max(shape[0] - 2 * half, 0)))
    c0 = int(np.clip(round(centre[1] - half), 0, max(shape[1] - 2 * half, 0)))
    side = int(round(2 * half))
    return slice(r0, min(r0 + side, shape[0])), slice(c0, min(c0 + side, shape[1]))


def thumbnail_rgb(image: np.ndarray, dseg: np.ndarray | None = None, lesion: np.ndarray | None = None,
                  size: int = 160, crop: bool = True, window: tuple[float, float] | None = None
                  ) -> np.ndarray:
    """One slice as an RGB tile ``[size, size, 3]``: the image with label contours.

    The image is cropped around the canal (``crop``), windowed between its 1st and 99.5th
    percentiles (or ``window``), upsampled to ``size`` (bilinear), and the contours of the
    upsampled labels (nearest) are drawn one pixel wide in :data:`CONTOURS` colours.
    """
    from PIL import Image

    image = np.asarray(image, np.float32)
    box = crop_box(dseg, image.shape) if crop else (slice(None), slice(None))
    patch = image[box]
    low, high = window if window is not None else np.percentile(patch, [1, 99.5])
    grey = np.clip((patch - low) / max(high - low, 1e-6), 0, 1)
    grey = np.asarray(Image.fromarray((grey * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR))
    rgb = np.repeat(grey[..., None], 3, axis=2)
    if dseg is not None:
        labels = np.asarray(Image.fromarray(np.asarray(dseg, np.uint8)[box]).resize((size, size), Image.NEAREST))
        for values, color in CONTOURS:
            _draw_contour(rgb, np.isin(labels, values), color)
        if lesion is not None:
            lesion_up = np.asarray(Image.fromarray((np.asarray(lesion)[box] > 0).astype(np.uint8))
                                   .resize((size, size), Image.NEAREST)) > 0
            _draw_contour(rgb, lesion_up, LABEL_COLORS[LESION_VALUE])
    return rgb


def _draw_contour(rgb: np.ndarray, mask: np.ndarray, color: str) -> None:
    if mask.any():
        edge = mask & ~ndimage.binary_erosion(mask, border_value=0)
        rgb[edge] = _hex_rgb(color)


def png_data_uri(rgb: np.ndarray) -> str:
    """``data:image/png;base64,...`` of an RGB array (for a self-contained HTML file)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ---------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{margin:0 0 4px}h2{margin-top:32px;border-bottom:1px solid #ccc;padding-bottom:4px}
.meta{color:#666;margin-bottom:16px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 16px;min-width:110px}
.card b{display:block;font-size:26px}
table{border-collapse:collapse;background:#fff;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;font-size:13px}
th{background:#eee}
.grid{display:flex;flex-wrap:wrap;gap:8px}
.tile{background:#111;color:#eee;border:3px solid #777;border-radius:4px;width:166px;font-size:12px}
.tile img{display:block;width:160px;height:160px;margin:3px}
.tile .cap{padding:2px 5px 4px}.tile.pass{border-color:#2e9d4b}.tile.fail{border-color:#d0312d}
.badge{display:inline-block;border-radius:8px;padding:0 6px;margin:1px;font-size:11px;color:#fff}
.b-pass{background:#2e9d4b}.b-fail{background:#d0312d}.b-unreviewed{background:#777}.b-sugg{background:#e08a00}
"""


def _badge(text: str, css: str, title: str = "") -> str:
    title_attr = f' title="{html.escape(title)}"' if title else ""
    return f'<span class="badge {css}"{title_attr}>{html.escape(text)}</span>'


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p><i>none</i></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><tr>{head}</tr>{body}</table>"


def _scan_tiles(entry, source: str, average: str, decisions: dict, hints: dict,
                flagged_only: bool = False) -> tuple[str, int]:
    from score_gui.labels import read_labels
    from score_gui.scan import read_scan

    scan = read_scan(entry.path)
    averages = scan.averages()
    image = averages.get(average, averages["all"])
    labels = read_labels(entry.dseg_path(source), scan) if entry.dseg_path(source).exists() else None
    tiles = []
    for s in range(scan.n_slices):
        if flagged_only and decisions.get(s, ("",))[0] != "fail" and not hints.get(s):
            continue
        dseg = labels.dseg[s] if labels is not None else None
        lesion = labels.lesion[s] if labels is not None and labels.lesion is not None else None
        uri = png_data_uri(thumbnail_rgb(image[s], dseg, lesion))
        status, reason = decisions.get(s, ("unreviewed", ""))
        level = scan.level(s)
        caption = f"slice {s}" + (f" · {html.escape(level)}" if level else "")
        badges = _badge(status + (f": {reason}" if reason else ""), f"b-{status}")
        for hint in hints.get(s, []):
            badges += _badge(hint.kind, "b-sugg", str(hint))
        alt = f"{entry.stem} slice {s}"
        tiles.append(f'<div class="tile {status}"><img alt="{html.escape(alt)}" src="{uri}">'
                     f'<div class="cap">{caption}<br>{badges}</div></div>')
    return '<div class="grid">' + "".join(tiles) + "</div>", scan.n_slices


def report_counts(in_force: pd.DataFrame, n_slices: int) -> dict:
    """Slices, reviewed, passed, failed, per reason and per reviewer."""
    from score_gui.qc.log import REASONS

    failed = in_force[in_force["status"] == "fail"]
    return {
        "slices": n_slices, "reviewed": len(in_force), "passed": int((in_force["status"] == "pass").sum()),
        "failed": len(failed),
        "per_reason": {r: int((failed["reason"] == r).sum()) for r in REASONS},
        "per_reviewer": in_force["reviewer"].value_counts().to_dict(),
    }


def write_report_job(study, output: str | Path, source: str = "score", average: str = "6-8",
                     suggestions: bool = True, flagged_only: bool = False
                     ) -> Generator[Progress, None, Path]:
    """Write the study's HTML report; yields one Progress per scan, returns the path.

    ``flagged_only`` draws thumbnails only for failed or suggested slices, which keeps
    the file small for large studies (every slice is about 20 kB of PNG).
    """
    from score_gui.atomic import atomic_path
    from score_gui.qc.log import QCLog, now_iso
    from score_gui.qc.suggest import scan_suggestions, suggestions_table

    started = time.monotonic()
    log = QCLog(study.root)
    in_force_source = log.in_force_for(source)   # image-level fails of other sources included
    sections, all_hints, n_slices = [], {}, 0
    for done, entry in enumerate(study.scans, start=1):
        decisions = log_map(in_force_source, entry.stem)
        hints = scan_suggestions(entry, source, study) if suggestions else {}
        all_hints[entry.stem] = hints
        grid, count = _scan_tiles(entry, source, average, decisions, hints, flagged_only)
        n_slices += count
        reviewed = len(decisions)
        sections.append(f'<h2 id="{html.escape(entry.stem)}">{html.escape(entry.stem)}</h2>'
                        f'<p class="meta">{reviewed}/{count} slices reviewed · '
                        f'{sum(1 for v in decisions.values() if v[0] == "fail")} failed · '
                        f'{sum(len(h) for h in hints.values())} suggestions</p>{grid}')
        yield Progress(done, len(study.scans), entry.stem, started)
    counts = report_counts(in_force_source, n_slices)
    page = _page(study, source, average, counts, sections, in_force_source,
                 suggestions_table(all_hints), len(log.decisions()), now_iso())
    with atomic_path(output) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(output)


def log_map(in_force: pd.DataFrame, stem: str) -> dict[int, tuple[str, str]]:
    rows = in_force[in_force["scan"] == stem]
    return {int(r.slice): (str(r.status), str(r.reason)) for r in rows.itertuples(index=False)}


def _page(study, source, average, counts, sections, in_force, hints_table, n_history, when) -> str:
    cards = "".join(f'<div class="card"><b>{value}</b>{label}</div>' for label, value in (
        ("slices", counts["slices"]), ("reviewed", counts["reviewed"]), ("passed", counts["passed"]),
        ("failed", counts["failed"]), ("suggestions", len(hints_table))))
    reasons = pd.DataFrame(list(counts["per_reason"].items()), columns=["reason", "failed slices"])
    reviewers = pd.DataFrame(list(counts["per_reviewer"].items()), columns=["reviewer", "decisions in force"])
    decisions = in_force.drop(columns=["source"]).sort_values(["scan", "slice"])
    legend = "".join(f'<span class="badge" style="background:{c}">{n}</span>' for n, c in (
        ("canal / cord", LABEL_COLORS[1]), ("GM", "#b07a4a"), ("anterior horns", LABEL_COLORS[4]),
        ("posterior horns", "#4f74d9"), ("gray commissure", "#3fa35a"), ("lesion", LABEL_COLORS[LESION_VALUE])))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>SCORE QC report: {html.escape(study.root.name)}</title>
<style>{_CSS}</style></head><body>
<h1>SCORE QC report: {html.escape(study.root.name)}</h1>
<div class="meta">{html.escape(str(study.root))} · labels <b>{html.escape(source)}</b> · images average
{html.escape(average)} · {len(study.scans)} scans · {n_history} decisions in the log · written {html.escape(when)}</div>
<div class="cards">{cards}</div>
<h2>Failed slices per reason</h2>{_table(reasons)}
<h2>Reviewers</h2>{_table(reviewers)}
<p>Contours: {legend}. Frame: <span class="badge b-pass">pass</span> <span class="badge b-fail">fail</span>
<span class="badge b-unreviewed">unreviewed</span>; <span class="badge b-sugg">orange</span> = automatic
suggestion (hover for details; never applied without a reviewer).</p>
{''.join(sections)}
<h2>Decisions in force</h2>{_table(decisions)}
<h2>Automatic suggestions</h2>{_table(hints_table)}
</body></html>
"""
