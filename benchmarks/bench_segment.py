"""Speed and memory of ``score segment`` (target: <= 2 s and <= 1.5 GB per 12-slice scan, 2 cores).

Run: ``.venv/bin/python benchmarks/bench_segment.py [--models DIR] [--quick]``

1. End to end: ``score segment`` in a fresh process on one 12-slice 192x192x8 demo scan
   with the full ensemble (3 members + localiser), Python start, imports and model
   loading included; wall time and peak RSS of that process (``resource.getrusage``), and
   the phases it reports (start-up = the wall time before the canal search and after writing).
2. A cohort in one command: the cost of each further scan.
3. In process: per-phase and per-slice time of ``segment_scan``.
4. The network alone on one member's 12 crops, one thread: the numpy network that ``score segment``
   runs against the PyTorch module it was trained as, per-slice calls and one batch of 12, and the
   largest difference between their logits.
5. Scaling with image size and slice count (in process, models loaded once; not with --quick).

Without trained weights in ``resources/models/default`` the benchmark uses an untrained
ensemble of the default architecture in a temporary folder (same cost).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from score_gui.inference import (ENSEMBLE_FILE, Ensemble, make_untrained_ensemble, models_root, segment_scan,
                                 worker_count)
from score_gui.mdgru.checkpoint import load_model, load_network
from score_gui.phantom.study import make_scan, write_demo
from score_gui.progress import drain


def pick_models(requested: str | None, tmp: Path) -> Path:
    if requested:
        return Path(requested)
    shipped = models_root() / "default"
    if (shipped / ENSEMBLE_FILE).is_file():
        return shipped
    print("no trained default models: using an untrained ensemble of the default architecture")
    return make_untrained_ensemble(tmp / "models", n_members=3)


def end_to_end(scan_path: Path, models: Path, out: Path, repeats: int) -> None:
    score = Path(sys.executable).with_name("score")
    command = [str(score), "segment", str(scan_path), "-o", str(out), "--models", str(models)]
    walls, phases = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        phases.append(reported_phases(done.stderr, walls[-1]))
    peak_gb = after.ru_maxrss / 1024 ** 2  # ru_maxrss is in KiB on Linux (max over children)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    print(f"end to end  score segment, 12 x 192x192x8, 3 members: wall median {np.median(walls):.2f} s, "
          f"min {min(walls):.2f} (runs {', '.join(f'{w:.2f}' for w in walls)}), last run CPU {cpu:.2f} s, "
          f"peak RSS {peak_gb:.2f} GB  [target <= 2 s, <= 1.5 GB]")
    median = {k: float(np.median([p[k] for p in phases])) for k in phases[0]}
    print("            phases (medians): " + ", ".join(f"{k} {v:.2f} s" for k, v in median.items()))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    imported = subprocess.run([sys.executable, "-c", "import sys, score_gui.cli, score_gui.inference; "
                               "score_gui.cli.build_parser(); print('torch' in sys.modules)"],
                              check=True, capture_output=True, text=True).stdout.strip()
    after_import = resource.getrusage(resource.RUSAGE_CHILDREN)
    import_cpu = (after_import.ru_utime + after_import.ru_stime) - (before.ru_utime + before.ru_stime)
    print(f"            of which Python start + imports: wall {time.perf_counter() - start:.2f} s, "
          f"CPU {import_cpu:.2f} s (single-threaded); PyTorch imported: {imported}")
    workers = min(worker_count(), 3)
    print(f"            on an idle machine about {import_cpu + (cpu - import_cpu) / workers:.1f} s "
          f"(imports + the rest of the CPU time over {workers} workers; an estimate, not a measurement)")


def cohort(scan_path: Path, models: Path, out: Path, n_scans: int) -> None:
    """One ``score segment`` command over ``n_scans`` scans: what each scan after the first costs
    once Python, the libraries and the models are loaded (as in a cohort run or the application)."""
    folder = out.parent / "cohort"
    folder.mkdir(exist_ok=True)
    scans = []
    for i in range(n_scans):
        copy = folder / f"sub-c{i:02d}_amira.nii.gz"
        shutil.copyfile(scan_path, copy)
        scans.append(str(copy))
    score = Path(sys.executable).with_name("score")
    walls = []
    for n in (1, n_scans):
        start = time.perf_counter()
        subprocess.run([str(score), "segment", *scans[:n], "-o", str(out), "--models", str(models)], check=True,
                       capture_output=True)
        walls.append(time.perf_counter() - start)
    print(f"cohort      score segment with {n_scans} scans: {walls[1]:.1f} s wall, "
          f"{(walls[1] - walls[0]) / (n_scans - 1):.2f} s per scan after the first (one scan alone: {walls[0]:.2f} s)")


def reported_phases(stderr: str, wall: float) -> dict[str, float]:
    """The phases ``score segment`` reports on its last line; start-up is the rest of the wall time
    (Python, imports, reading the models and the scan)."""
    numbers = re.search(r"\(([\d.]+) s: canal ([\d.]+), members ([\d.]+), vote ([\d.]+), writing ([\d.]+)\)",
                        stderr)
    if numbers is None:
        raise SystemExit(f"score segment did not report its phases:\n{stderr}")
    total, canal, members, vote, write = (float(v) for v in numbers.groups())
    return {"start-up": wall - total - write, "localiser": canal, "members": members, "vote": vote,
            "writing": write}


def in_process(ensemble: Ensemble, kind: str = "ms") -> None:
    scan, _, _ = make_scan(kind, seed=3, n_slices=12)
    drain(segment_scan(scan, ensemble))  # warm-up
    best = None
    for _ in range(2):
        result = drain(segment_scan(scan, ensemble))
        if best is None or result.timing["total"] < best["total"]:
            best = result.timing
    per_member_slice = best["members"] / (scan.n_slices * len(ensemble.members))
    print(f"in process  total {best['total']:.2f} s: localise {best['localise']:.3f} s, members "
          f"{best['members']:.2f} s ({per_member_slice * 1000:.0f} ms per member-slice), vote "
          f"{best['vote']:.3f} s; {best['per_slice'] * 1000:.0f} ms per slice")


def scaling(ensemble: Ensemble) -> None:
    for shape, n_slices in (((128, 128), 12), ((192, 192), 12), ((256, 256), 12), ((384, 384), 12),
                            ((192, 192), 6), ((192, 192), 24)):
        scan, _, _ = make_scan("hc", seed=1, n_slices=n_slices, shape=shape)
        start = time.perf_counter()
        drain(segment_scan(scan, ensemble))
        wall = time.perf_counter() - start
        print(f"scaling     {shape[0]}x{shape[1]} x {n_slices:2d} slices: {wall:.2f} s "
              f"({wall / n_slices * 1000:.0f} ms per slice)")


def network_alone(checkpoint: Path, crop: int) -> None:
    """One member on 12 crops, one thread: the numpy network ``score segment`` runs on the CPU
    against the PyTorch module it was trained as (per-slice calls and one batch of 12)."""
    import torch

    torch.set_num_threads(1)
    network, _ = load_network(checkpoint)
    model, _ = load_model(checkpoint)
    x = np.random.default_rng(0).standard_normal((12, network.in_channels, crop, crop)).astype(np.float32)
    with threadpool_limits(1, user_api="blas"), torch.inference_mode():
        tensor = torch.from_numpy(x)
        for name, run in (("numpy", network), ("PyTorch", lambda batch: model(torch.from_numpy(batch)))):
            run(x[:1])
            per_slice = min(_timed(lambda: [run(x[i:i + 1]) for i in range(12)]) for _ in range(3))
            batched = min(_timed(lambda: run(x)) for _ in range(3))
            print(f"network     one member, {name}, 1 thread, 12 crops of {crop}x{crop}: per-slice calls "
                  f"{per_slice:.3f} s, one batch of 12 {batched:.3f} s")
        difference = float(np.abs(network(x) - model(tensor).numpy()).max())
    print(f"            largest difference between the two logits: {difference:.1e}")


def first_checkpoint(models: Path) -> Path:
    """The first member's first checkpoint, as ``ensemble.json`` lists it."""
    first = json.loads((models / ENSEMBLE_FILE).read_text(encoding="utf-8"))["members"][0]
    return models / (first["checkpoints"][0] if isinstance(first, dict) else first)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="model folder (default: shipped default, else untrained)")
    parser.add_argument("--quick", action="store_true", help="skip the scaling runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cohort", type=int, default=10, help="scans in the one-command cohort run (0: skip)")
    args = parser.parse_args()
    threads = min(worker_count(), 3)
    print(f"numpy network, {threads} workers (SCORE_THREADS={os.environ.get('SCORE_THREADS', '')}), "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (other processes slow every number)")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        models = pick_models(args.models, tmp)
        scan_path = write_demo(tmp / "data", kind="ms", seed=1)["scan"]
        end_to_end(scan_path, models, tmp / "out", args.repeats)
        if args.cohort > 1:
            cohort(scan_path, models, tmp / "out", args.cohort)
        ensemble = Ensemble.load(models)
        crop = ensemble.members[0].crop_size_px
        print(f"models      {models}: {len(ensemble.members)} members, crop {crop} px at "
              f"{ensemble.members[0].pixel_size_mm} mm, localiser {'yes' if ensemble.localiser else 'no'}")
        in_process(ensemble)
        network_alone(first_checkpoint(models), crop or 192)
        if not args.quick:
            scaling(ensemble)


if __name__ == "__main__":
    main()
