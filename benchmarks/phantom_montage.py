"""Render a PNG montage of synthetic AMIRA slices and time the slice generator.

Rows: a few slices (levels C2-C5, HC and MS, one degraded). Columns: the 8 inversion images,
then the 1-5, 6-8 and all averages, then the 1-5 average with the true label contours
(gold canal/cord, brown GM, red anterior horns, blue posterior horns, green commissure,
purple lesions). Each row is cropped around the canal and enlarged.

Usage::

    .venv/bin/python benchmarks/phantom_montage.py [OUT.png] [--seed N] [--contrast amira|t2star]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from score_gui.labels import LABEL_COLORS, structure_mask
from score_gui.phantom import make_slice, random_subject
from score_gui.phantom.render import SyntheticSlice

CROP = 26
ZOOM = 4


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5))


def _gray(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, (0.5, 99.7))
    return (np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def _crop(image: np.ndarray, center) -> np.ndarray:
    r, c = (int(round(v)) for v in center)
    padded = np.pad(image, CROP, mode="constant")
    return padded[r: r + 2 * CROP, c: c + 2 * CROP]


def _contoured(gray: np.ndarray, s: SyntheticSlice, center) -> np.ndarray:
    rgb = np.repeat(np.kron(gray, np.ones((ZOOM, ZOOM), np.uint8))[..., None], 3, axis=2)
    layers = [("canal", LABEL_COLORS[1]), ("cord", LABEL_COLORS[1]), ("gm", LABEL_COLORS[3]),
              ("anterior_horns", LABEL_COLORS[4]), ("posterior_horns", LABEL_COLORS[5]),
              ("gray_commissure", LABEL_COLORS[6]), ("lesion", LABEL_COLORS[7])]
    for name, color in layers:
        mask = _crop(structure_mask(s.dseg, name, s.lesion).astype(np.uint8), center)
        big = np.kron(mask, np.ones((ZOOM, ZOOM), np.uint8)).astype(bool)
        edge = big & ~ndimage.binary_erosion(big)
        rgb[edge] = _rgb(color)
    return rgb


def montage(slices: list[SyntheticSlice]) -> Image.Image:
    rows = []
    for s in slices:
        center = s.info["canal_center_px"]
        tiles = [_gray(_crop(img, center)) for img in s.images]
        if len(s.images) == 8:
            averages = [s.images[:5].mean(0), s.images[5:].mean(0), s.images.mean(0)]
            tiles += [_gray(_crop(avg, center)) for avg in averages]
        big = [np.repeat(np.kron(t, np.ones((ZOOM, ZOOM), np.uint8))[..., None], 3, axis=2) for t in tiles]
        big.append(_contoured(tiles[8] if len(tiles) > 8 else tiles[0], s, center))
        sep = np.full((big[0].shape[0], 4, 3), 40, np.uint8)
        row = np.concatenate([x for tile in big for x in (tile, sep)], axis=1)
        rows.append(np.concatenate([row, np.full((4, row.shape[1], 3), 40, np.uint8)], axis=0))
    return Image.fromarray(np.concatenate(rows, axis=0))


def full_view(s: SyntheticSlice) -> Image.Image:
    """The whole field of view: TI1, TI4, TI8 and the 1-5 / 6-8 averages side by side."""
    picks = [s.images[0]]
    if len(s.images) == 8:
        picks += [s.images[3], s.images[7], s.images[:5].mean(0), s.images[5:].mean(0)]
    row = np.concatenate([_gray(p) for p in picks], axis=1)
    return Image.fromarray(row)


def time_slices(n: int, shape=(192, 192)) -> tuple[float, float]:
    """Wall and CPU milliseconds per slice (CPU time is robust to a busy machine)."""
    rng = np.random.default_rng(123)
    subject = random_subject(rng, "ms")
    make_slice(rng, subject=subject, shape=shape)  # warm-up (signal curves cached)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        make_slice(rng, level=("C2", "C3", "C4", "C5")[i % 4], subject=subject, shape=shape)
    return ((time.perf_counter() - wall) / n * 1000, (time.process_time() - cpu) / n * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="phantom_montage.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--contrast", default="amira", choices=("amira", "t2star"))
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    hc, ms = random_subject(rng, "hc"), random_subject(rng, "ms")
    slices = [make_slice(rng, level=lv, subject=subj, contrast=args.contrast, degrade="none")
              for lv, subj in (("C2", hc), ("C4", hc), ("C3", ms), ("C5", ms))]
    for z in np.arange(0, 96, 8.0):
        s = make_slice(rng, level=ms.level_of(int(z // 8)), subject=ms, z_mm=float(z),
                       contrast=args.contrast, degrade="none")
        if s.lesion.any():
            slices.append(s)
            break
    for reason in ("arch_contact", "motion", "low_snr"):
        slices.append(make_slice(rng, level="C4", subject=hc, contrast=args.contrast, degrade=reason))
    out = Path(args.out)
    montage(slices).save(out)
    full_view(slices[1]).save(out.with_name(out.stem + "_full.png"))
    for s in slices:
        print(f"{s.info['level']} {s.info['kind']} degraded={s.info['degraded']} lesions={len(s.info['lesions'])}")
    print(f"wrote {out} and {out.with_name(out.stem + '_full.png')}")
    for shape in ((192, 192), (256, 256)):
        wall, cpu = time_slices(40, shape)
        print(f"make_slice {shape[0]}x{shape[1]}: {wall:.1f} ms wall, {cpu:.1f} ms CPU per slice")


if __name__ == "__main__":
    main()
