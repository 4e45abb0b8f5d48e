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

from score_gui.phantom_variant import render_slice, variant_subject

# Same layout as the phantom's montage, so the two generators can be compared side by side.
from phantom_montage import full_view, montage  # noqa: E402  (same folder: run as a script)


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
