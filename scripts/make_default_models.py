"""Train SCORE Studio's default ensemble on synthetic AMIRA slices and write resources/models/default/.

Three members, one per simulated rater (A, B, C: :func:`score_gui.phantom.simulate_rater`),
each a fused MDGRU (:data:`score_gui.mdgru.model.DEFAULT_ARCHITECTURE`, heads ``tissue`` +
``lesion``) at 0.5 mm pixels, plus a canal localiser (2 mm grid, whole field of view).
Every training slice is drawn fresh from the phantom with heavy randomisation: a new subject
(HC or MS, anatomy, flip angle, inversion cycle, SNR, bias field, pose), level C2-C5, pixel
size 0.4-0.8 mm (slightly anisotropic), field of view 60-140 mm, the phantom's artifacts on
10 % of slices, then :class:`score_gui.training.augment.AugmentConfig` (rotation, scaling,
elastic, mirror, gamma, inversion-time contrast shifts, bias field, Rician noise).

Parts can run in parallel processes and resume after a kill::

    python scripts/make_default_models.py --part A &   # likewise B, C, localiser
    python scripts/make_default_models.py --assemble    # writes ensemble.json when all exist

or everything in one process: ``python scripts/make_default_models.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from score_gui.mdgru.checkpoint import (DEFAULT_CROP_SIZE_PX, DEFAULT_PIXEL_SIZE_MM, load_model, read_checkpoint,
                                       save_model)
from score_gui.mdgru.heads import HEADS, n_outputs
from score_gui.mdgru.model import DEFAULT_ARCHITECTURE, LOCALISER_ARCHITECTURE, MDGRUNet
from score_gui.mdgru.preprocess import LOCALISER_PIXEL_SIZE_MM
from score_gui.training.augment import AugmentConfig
from score_gui.training.data import LocaliserSampler, SyntheticConfig, SyntheticSampler, synthetic_slice
from score_gui.training.loop import TrainConfig, member_meta, train_model, training_loss, write_ensemble_json

REPO = Path(__file__).resolve().parents[1]
RATERS = ("A", "B", "C")
SEEDS = {"A": 1001, "B": 2002, "C": 3003, "localiser": 4004, "base": 5005, "base2": 6006}
"""Training seeds; benchmarks/bench_accuracy.py draws its test scans with seeds far from these."""


@dataclass
class SyntheticLocaliserSampler(LocaliserSampler):
    """Localiser samples from fresh phantom slices (true labels: the canal is unambiguous)."""

    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def draw_item(self, rng):
        return synthetic_slice(rng, self.synthetic)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Initialise from a training state (``*.state.pt``) or a saved model checkpoint."""
    content = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(content.get("model") or content["state_dict"])


def lineage(init: Path | None) -> list[dict]:
    """The stages that made the weights in ``init``, latest first, ending with one trained from
    random weights (``initialised_from`` None) when the chain is complete: whether two members
    share an ancestor can be read off their checkpoints. A training state (``*.state.pt``)
    carries no record: its stage is listed with ``command`` None.
    """
    if init is None:
        return []
    if init.name.endswith(".state.pt"):
        return [{"file": init.name, "command": None}]
    training = read_checkpoint(init)["meta"].get("training", {})
    stage = {"file": init.name, "command": training.get("command"), "iterations": training.get("iterations"),
             "seed": training.get("data", {}).get("seed"),
             "initialised_from": training.get("data", {}).get("initialised_from")}
    return [stage] + list(training.get("lineage", []))


MILD_SLICES = {"random_contrast": 0.2, "wide_anatomy": 0.4, "t2star_fraction": 0.05}
"""The "mild" share of :meth:`SyntheticConfig.robust`, for fine-tuning trained members."""
MILD_CHANNELS = {"channel_collapse": 0.1, "channel_drop": 0.1, "channel_shuffle": 0.05}
ROBUST_MODES = {
    # --robust: (training slices, geometry and noise, channel changes) of the members
    None: ("plain", "plain", {}),
    "full": ("robust", "robust", {}),
    "mild": ("mild", "robust", MILD_CHANNELS),
    "contrast": ("mild", "plain", MILD_CHANNELS),  # the mild slices with sharp borders
    "collapse": ("plain", "plain", {"channel_collapse": 0.15}),  # one contrast repeated, as transfer feeds it
}


def train_part(part: str, out: Path, work: Path, iterations: int, crop: int, log_every: int,
               init: Path | None = None, learning_rate: float | None = None, export_only: bool = False,
               dice_weight: float = 0.0, lesion_enrich: float = 0.0, seed_offset: int = 0,
               robust: str | None = None, batch_size: int = 1, command: str = "") -> Path:
    """Train one member (A, B, C), the shared ``base`` or the localiser; returns its checkpoint.

    ``export_only`` saves the latest training state as it is (for a run stopped early).
    ``seed_offset`` gives a continued run its own stream of training slices; ``robust`` picks
    the training slices, geometry and channel changes from :data:`ROBUST_MODES`.
    """
    localiser = part == "localiser"
    heads = [HEADS["canal"]] if localiser else [HEADS["tissue"], HEADS["lesion"]]
    arch = LOCALISER_ARCHITECTURE if localiser else DEFAULT_ARCHITECTURE
    rater = None if localiser else ("A,B,C" if part.startswith("base") else part)
    enrich = 0.0 if localiser else lesion_enrich
    slices, geometry, channels = ROBUST_MODES[robust]
    synthetic = (SyntheticConfig.robust(rater=rater, lesion_enrich=enrich) if slices != "plain"
                 else SyntheticConfig(rater=rater, lesion_enrich=enrich))
    if slices == "mild":
        synthetic = dataclasses.replace(synthetic, **MILD_SLICES)
    if localiser:
        sampler = SyntheticLocaliserSampler(heads=heads, synthetic=synthetic)
        if robust:  # the whole neck in view: mild geometry, every intensity change
            sampler.augment = dataclasses.replace(AugmentConfig.robust(), rotation_deg=20.0, scaling=1.15,
                                                  anisotropy=1.1, elastic_px=0.5)
    else:
        augment = AugmentConfig.robust() if geometry == "robust" else AugmentConfig()
        augment = dataclasses.replace(augment, **channels)
        sampler = SyntheticSampler(heads=heads, pixel_size_mm=DEFAULT_PIXEL_SIZE_MM, crop_px=crop,
                                   max_offset_mm=5.0, augment=augment, synthetic=synthetic)
    config = TrainConfig(iterations=iterations, optimizer="adam", seed=SEEDS[part] + seed_offset, checkpoint_every=25,
                         learning_rate=learning_rate, batch_size=batch_size)
    torch.manual_seed(config.seed)
    model = MDGRUNet(8, n_outputs(heads), **arch)
    state = work / f"{part}.state.pt"
    if init is not None and not state.exists():
        load_weights(model, init)
    if export_only:
        saved = torch.load(state, map_location="cpu", weights_only=False)
        config = TrainConfig(**{**config.to_dict(), "iterations": int(saved["iteration"])})
    loss = training_loss(heads, localiser, dice_weight)
    job = train_model(model, sampler.sample, loss, config,
                      work / f"{part}.state.pt", resume=True, label=part)
    started = time.monotonic()
    try:
        while True:
            step = next(job)
            if step.done % log_every == 0 or step.done == step.total:
                print(f"{part} {step.done}/{step.total} loss {step.extra['loss']:.4f} "
                      f"{time.monotonic() - started:.0f}s", flush=True)
    except StopIteration as stop:
        result = stop.value
    name = "localiser" if localiser else part
    extra = {"data": {"source": "synthetic phantom (score_gui.phantom.make_slice), fresh slices (2 crops "
                                "each)", "rater": None if localiser else f"simulated rater(s) {synthetic.rater}",
                      "initialised_from": None if init is None else init.name,
                      "slices_seen": result.iterations * config.batch_size, "seed": SEEDS[part] + seed_offset},
             "synthetic": synthetic.to_dict(), "augmentation": sampler.augment.to_dict(),
             "training_crop_px": None if localiser else crop,
             "loss": f"score_gui.training.loop.member_loss, dice weight {dice_weight}",
             "command": command, "lineage": lineage(init)}
    meta = member_meta(name, heads, [], config, result,
                       pixel_size_mm=LOCALISER_PIXEL_SIZE_MM if localiser else DEFAULT_PIXEL_SIZE_MM,
                       crop_size_px=0 if localiser else DEFAULT_CROP_SIZE_PX, extra=extra)
    meta["training"]["data"] = extra["data"]
    # Seen in training, yet measured not good enough on single-contrast scans (bench_generalisation
    # --contrast t2star: cord 0.33, GM 0): such scans are refused and need score train --init default.
    meta["single_contrast_broadcast"] = False
    path = (work if part.startswith("base") else out) / ("localiser.pt" if localiser else f"rater{part}.pt")
    save_model(path, result.model, meta)
    print(f"{part}: wrote {path} after {result.iterations} iterations, loss curve {result.loss_curve(10)}",
          flush=True)
    return path


def assemble(out: Path) -> Path:
    """Write ensemble.json once every member and the localiser exist."""
    missing = [f for f in [f"rater{r}.pt" for r in RATERS] + ["localiser.pt"] if not (out / f).exists()]
    if missing:
        raise SystemExit(f"cannot assemble: missing {missing}")
    return write_ensemble_json(out, [(r, f"rater{r}.pt") for r in RATERS], "localiser.pt")


def set_inference_crop(out: Path, crop: int, command: str = "") -> list[Path]:
    """Give every member in ``out`` a new inference crop; the change is kept in its training record.

    Only the field the members see at inference changes, not their weights: MDGRU runs on
    any crop size, and the Dice of both generators is measured before such a change.
    """
    paths = []
    for rater in RATERS:
        path = out / f"rater{rater}.pt"
        model, meta = load_model(path)
        meta["training"].setdefault("inference_crop_history", []).append(
            {"from": int(meta["crop_size_px"]), "to": int(crop), "command": command})
        meta["crop_size_px"] = int(crop)
        paths.append(save_model(path, model, meta))
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "resources" / "models" / "default")
    parser.add_argument("--work", type=Path, default=Path("/tmp/score_default_models"),
                        help="resumable training states (not shipped)")
    parser.add_argument("--part", choices=(*RATERS, "localiser", "base", "base2"), action="append",
                        help="train only these parts (repeatable); default all")
    parser.add_argument("--init", type=Path, help="start from these weights (state or checkpoint)")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 5e-3)")
    parser.add_argument("--dice", type=float, default=0.5,
                        help="weight of the soft Dice term (CE + Dice as Horvath et al. 2019)")
    parser.add_argument("--lesion-enrich", type=float, default=0.0,
                        help="probability of redrawing an MS slice without lesions")
    parser.add_argument("--export", action="store_true",
                        help="save the parts' latest training states as models without training on")
    parser.add_argument("--assemble", action="store_true", help="only write ensemble.json")
    parser.add_argument("--inference-crop", type=int, metavar="PX",
                        help="with --assemble: set the members' inference crop (crop_size_px) to PX")
    parser.add_argument("--iterations", type=int, default=1500, help="iterations per member")
    parser.add_argument("--localiser-iterations", type=int, default=600)
    parser.add_argument("--crop", type=int, default=48, help="training crop side in 0.5 mm pixels")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1, help="crops per optimiser step")
    parser.add_argument("--seed-offset", type=int, default=0,
                        help="added to each part's seed (a continued run sees new slices)")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--robust", nargs="?", const="full", choices=[mode for mode in ROBUST_MODES if mode],
                        default=None,
                        help="train on SyntheticConfig.robust() slices with AugmentConfig.robust(); 'mild': "
                             "a fifth of the random contrasts, 40 %% wide anatomy, half the channel changes; "
                             "'contrast': mild slices and channel changes, the plain geometry and noise; "
                             "'collapse': the plain phantom, 15 %% of crops as one contrast repeated")
    args = parser.parse_args(argv)
    command = "python scripts/make_default_models.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.inference_crop and not args.assemble:
        parser.error("--inference-crop changes the assembled models: give --assemble with it")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.assemble:
        for part in args.part or [*RATERS, "localiser"]:
            n = args.localiser_iterations if part == "localiser" else args.iterations
            train_part(part, args.out, args.work, n, args.crop, args.log_every, init=args.init,
                       learning_rate=args.lr, export_only=args.export,
                       dice_weight=0.0 if part == "localiser" else args.dice,
                       lesion_enrich=args.lesion_enrich, seed_offset=args.seed_offset, robust=args.robust,
                       batch_size=args.batch_size, command=command)
    if args.assemble and args.inference_crop:
        for path in set_inference_crop(args.out, args.inference_crop, command):
            print(f"{path}: crop_size_px {args.inference_crop}")
    if args.assemble or not args.part:
        print(f"wrote {assemble(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
