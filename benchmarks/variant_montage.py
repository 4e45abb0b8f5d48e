"""Render a PNG montage of the evaluation-only generator (``score_gui.phantom_variant``).

Rows: a few slices of healthy and MS subjects (C2-C5). Columns: the 8 inversion images,
the 1-5, 6-8 and all averages, then the 1-5 average with the true label contours (gold
canal/cord, red anterior horns, blue posterior horns, green commissure, purple lesions).
A second PNG shows the whole field of view (TI1, TI4, TI8, averages 1-5 and 6-8).

Usage::

    .venv/bin/python benchmarks/variant_montage.py [OUT.png] [--seed N] [--contrast amira|t2star]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from score_gui.labels import LABEL_COLORS, structure_mask
from score_gui.phantom_variant import VariantSlice, render_slice, variant_subject

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


def _big(tile: np.ndarray) -> np.ndarray:
    return np.repeat(np.kron(tile, np.ones((ZOOM, ZOOM), np.uint8))[..., None], 3, axis=2)


def _contoured(gray: np.ndarray, s: VariantSlice, center) -> np.ndarray:
    rgb = _big(gray)
    for name, color in [("canal", LABEL_COLORS[1]), ("cord", LABEL_COLORS[1]),
                        ("anterior_horns", LABEL_COLORS[4]), ("posterior_horns", LABEL_COLORS[5]),
                        ("gray_commissure", LABEL_COLORS[6]), ("lesion", LABEL_COLORS[7])]:
        mask = _crop(structure_mask(s.dseg, name, s.lesion).astype(np.uint8), center)
        big = np.kron(mask, np.ones((ZOOM, ZOOM), np.uint8)).astype(bool)
        rgb[big & ~ndimage.binary_erosion(big)] = _rgb(color)
    return rgb


def montage(slices: list[VariantSlice]) -> Image.Image:
    """One row per slice, cropped around the canal and enlarged."""
    rows = []
    for s in slices:
        center = s.info["canal_center_px"]
        tiles = [_gray(_crop(img, center)) for img in s.images]
        if len(s.images) == 8:
            tiles += [_gray(_crop(avg, center)) for avg in
                      (s.images[:5].mean(0), s.images[5:].mean(0), s.images.mean(0))]
        big = [_big(t) for t in tiles] + [_contoured(tiles[8] if len(tiles) > 8 else tiles[0], s, center)]
        sep = np.full((big[0].shape[0], 4, 3), 40, np.uint8)
        row = np.concatenate([x for tile in big for x in (tile, sep)], axis=1)
        rows.append(np.concatenate([row, np.full((4, row.shape[1], 3), 40, np.uint8)], axis=0))
    return Image.fromarray(np.concatenate(rows, axis=0))


def full_view(s: VariantSlice) -> Image.Image:
    picks = [s.images[0]]
    if len(s.images) == 8:
        picks += [s.images[3], s.images[7], s.images[:5].mean(0), s.images[5:].mean(0)]
    return Image.fromarray(np.concatenate([_gray(p) for p in picks], axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="variant_montage.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--contrast", default="amira", choices=("amira", "t2star"))
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    subjects = [variant_subject(rng, "hc"), variant_subject(rng, "hc"), variant_subject(rng, "ms")]
    picks = [(subjects[0], 1), (subjects[0], 7), (subjects[1], 4), (subjects[1], 10)]
    ms = subjects[2]
    lesion_slices = [i for i in range(ms.n_slices)
                     if any(p.taper(i * 8.0) >= 0.3 for p in ms.plaques)]
    picks += [(ms, i) for i in lesion_slices[:2]] or [(ms, 5)]
    started = time.perf_counter()
    slices = [render_slice(subj, rng, i, contrast=args.contrast) for subj, i in picks]
    per_slice = (time.perf_counter() - started) / len(slices) * 1000
    out = Path(args.out)
    montage(slices).save(out)
    full_view(slices[1]).save(out.with_name(out.stem + "_full.png"))
    for s in slices:
        gm = (s.dseg >= 3).sum() / max((s.dseg >= 2).sum(), 1)
        print(f"{s.info['level']} noise={s.info['noise']} coils={s.info['n_coils']} snr={s.info['snr_gm']} "
              f"gm_fraction={gm:.3f} lesion_px={int(s.lesion.sum())}")
    print(f"wrote {out} and {out.with_name(out.stem + '_full.png')}; {per_slice:.0f} ms per 192x192 slice")


if __name__ == "__main__":
    main()
