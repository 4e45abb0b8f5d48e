"""On-the-fly augmentation of training slices (numpy/scipy, a few ms per slice).

Geometry and resampling happen in ONE interpolation: :func:`sampling_grid` builds, for every
pixel of the output crop (at the model's pixel size), the position in the source slice it
comes from, composing the crop centre, the change of pixel size, a random rotation, a
log-uniform scaling, a left-right mirror and a smooth elastic displacement. Images are
then sampled bilinearly (:func:`warp_images`) and labels by nearest neighbour
(:func:`warp_labels`), so label values never blend and stay aligned with the image.

Intensity changes (:func:`augment_intensity`) act on the raw magnitude images before the
z-score normalisation: per-image gamma, a shift of the contrast along the inversion-time
axis (as a different flip angle, T1 or timing would give), a smooth multiplicative bias
field, and Rician noise.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> coords = sampling_grid((32, 32), centre=(20.0, 20.0), scale=1.0, rng=rng,
...                        config=AugmentConfig.none())
>>> coords.shape, float(coords[0, 16, 16]), float(coords[1, 16, 16])
((2, 32, 32), 20.5, 20.5)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random changes; every one can be switched off with 0 / ``False``.

    Attributes
    ----------
    rotation_deg : float
        Uniform rotation in [-a, a] degrees about the crop centre.
    scaling : float
        Isotropic zoom factor s**U(-1, 1) (log-uniform in [1/s, s]); 1 = off.
    anisotropy : float
        Extra per-axis factor a**U(-1, 1); 1 = off.
    elastic_px : float
        Standard deviation (output pixels) of the elastic displacement at the grid nodes,
        times a per-sample strength U(0, 1) (mdgru's ``--deform``/``--deformSigma``).
    elastic_nodes : int
        Nodes per axis of the coarse displacement grid (cubic-upsampled to the crop).
    mirror_lr : bool
        Random left-right mirror (the cord's compartments are symmetric left/right; the
        anterior/posterior axis is never flipped: anterior and posterior horns differ).
    gamma : float
        Per-image gamma g**U(-1, 1) on the [0, 1]-scaled magnitude; 1 = off.
    ti_shift : float
        Contrast shift along the inversion-time axis, U(-t, t) images (linear
        interpolation between neighbouring images); only for multi-image scans.
    ti_tilt : float
        Relative brightness ramp across the inversion images, U(-t, t).
    bias : float
        Amplitude of a smooth (quadratic) log bias field.
    noise : float
        Maximum Rician noise, relative to the mean image intensity (drawn U(0, noise)).
    gaussian_noise : float
        Probability that the noise is plain additive Gaussian (phase-corrected real
        images) instead of Rician.
    blur : float
        Maximum Gaussian blur sigma in native pixels, U(0, blur): a lower true resolution
        than the pixel grid (scanners interpolate, sites filter).
    banding : float
        Probability of bSSFP off-resonance banding: dark, slightly curved stripes.
    channel_collapse : float
        Probability that every image is replaced by one random positive mix of them: the
        model then sees a single contrast repeated (how single-contrast scans reach an
        8-image model, :func:`score_gui.training.transfer.adapt_first_layer`).
    channel_drop : float
        Probability that only a random subset of the images is kept, the others replaced
        by copies of kept ones (fewer distinct inversion times).
    channel_shuffle : float
        Probability that the images come in a random order.
    """

    rotation_deg: float = 15.0
    scaling: float = 1.15
    anisotropy: float = 1.08
    elastic_px: float = 1.5
    elastic_nodes: int = 5
    mirror_lr: bool = True
    gamma: float = 1.4
    ti_shift: float = 0.5
    ti_tilt: float = 0.2
    bias: float = 0.25
    noise: float = 0.06
    gaussian_noise: float = 0.0
    blur: float = 0.0
    banding: float = 0.0
    channel_collapse: float = 0.0
    channel_drop: float = 0.0
    channel_shuffle: float = 0.0

    @classmethod
    def none(cls) -> "AugmentConfig":
        """No augmentation at all (evaluation and inference)."""
        return cls(0.0, 1.0, 1.0, 0.0, 5, False, 1.0, 0.0, 0.0, 0.0, 0.0)

    @classmethod
    def robust(cls) -> "AugmentConfig":
        """Far beyond the plausible, for models that must work on other sites' scans.

        Rotations to 30 degrees, strong scaling and anisotropy, blur, banding, both
        noise types, and images dropped, collapsed to one contrast or shuffled.
        """
        return cls(rotation_deg=30.0, scaling=1.3, anisotropy=1.2, elastic_px=2.0, gamma=2.0,
                   ti_shift=1.0, ti_tilt=0.4, bias=0.6, noise=0.15, gaussian_noise=0.3, blur=1.2,
                   banding=0.15, channel_collapse=0.2, channel_drop=0.15, channel_shuffle=0.1)

    def to_dict(self) -> dict:
        return asdict(self)


def _log_uniform(rng: np.random.Generator, factor: float) -> float:
    return float(factor ** rng.uniform(-1.0, 1.0)) if factor > 1.0 else 1.0


def elastic_field(shape: tuple[int, int], rng: np.random.Generator, std_px: float,
                  nodes: int = 5) -> np.ndarray:
    """Smooth random displacement ``[2, H, W]`` in output pixels (cubic-upsampled node grid)."""
    if std_px <= 0:
        return np.zeros((2, *shape), np.float32)
    strength = rng.uniform(0.0, 1.0)
    coarse = rng.normal(0.0, std_px * strength, size=(2, nodes, nodes))
    zoom = (1, shape[0] / nodes, shape[1] / nodes)
    field = ndimage.zoom(coarse, zoom, order=3, mode="nearest", grid_mode=True)
    return field[:, : shape[0], : shape[1]].astype(np.float32)


def sampling_grid(out_shape: tuple[int, int], centre: tuple[float, float], scale: float | tuple,
                  rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Source coordinates ``[2, H, W]`` (row, col) for each output pixel.

    Parameters
    ----------
    out_shape : (int, int)
        Crop size in output pixels.
    centre : (float, float)
        Source position (row, col, in source pixels) of the crop's centre.
    scale : float or (float, float)
        Output pixel size divided by source pixel size (per axis), e.g. 0.67 / 0.5.
    rng, config
        Random source and ranges (``AugmentConfig.none()`` gives a plain resampled crop).
    """
    h, w = out_shape
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float32) - (h - 1) / 2,
                             np.arange(w, dtype=np.float32) - (w - 1) / 2, indexing="ij")
    offsets = np.stack([rows, cols]) + elastic_field(out_shape, rng, config.elastic_px,
                                                     config.elastic_nodes)
    if config.mirror_lr and rng.random() < 0.5:
        offsets[1] = -offsets[1]
    angle = np.deg2rad(rng.uniform(-config.rotation_deg, config.rotation_deg)) if config.rotation_deg else 0.0
    zoom = _log_uniform(rng, config.scaling)
    aniso = _log_uniform(rng, config.anisotropy)
    cos, sin = np.cos(angle), np.sin(angle)
    r = (cos * offsets[0] - sin * offsets[1]) * zoom * aniso
    c = (sin * offsets[0] + cos * offsets[1]) * zoom / aniso
    scale_r, scale_c = (scale, scale) if np.isscalar(scale) else scale
    return np.stack([centre[0] + r * scale_r, centre[1] + c * scale_c]).astype(np.float32)


def warp_images(images: np.ndarray, coords: np.ndarray, order: int = 1) -> np.ndarray:
    """Sample every image ``[T, H, W]`` at ``coords`` (bilinear; 0 outside the slice)."""
    return np.stack([ndimage.map_coordinates(img, coords, order=order, mode="constant", cval=0.0,
                                             prefilter=order > 1) for img in images]).astype(np.float32)


def warp_labels(labels: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Sample an integer label map ``[H, W]`` at ``coords`` by nearest neighbour (0 outside)."""
    out = ndimage.map_coordinates(labels, coords, order=0, mode="constant", cval=0, prefilter=False)
    return out.astype(labels.dtype)


def bias_field(shape: tuple[int, int], rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """A smooth multiplicative field exp(quadratic polynomial), mean about 1."""
    if amplitude <= 0:
        return np.ones(shape, np.float32)
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    terms = np.stack([x, y, x * x, y * y, x * y])
    coef = rng.normal(0.0, amplitude / 2, size=5)
    return np.exp(np.tensordot(coef, terms, axes=1)).astype(np.float32)


def augment_intensity(images: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Random contrast, bias field and noise on magnitude images ``[T, H, W]`` (new array)."""
    out = np.abs(np.asarray(images, np.float32))
    n_images = out.shape[0]
    if n_images > 1 and config.ti_shift > 0:
        position = np.clip(np.arange(n_images) + rng.uniform(-config.ti_shift, config.ti_shift),
                           0, n_images - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, n_images - 1)
        frac = (position - low)[:, None, None].astype(np.float32)
        out = out[low] * (1 - frac) + out[high] * frac
    if n_images > 1 and config.ti_tilt > 0:
        ramp = 1 + rng.uniform(-config.ti_tilt, config.ti_tilt) * np.linspace(-1, 1, n_images)
        out = out * ramp[:, None, None].astype(np.float32)
    if config.gamma > 1:
        peak = out.reshape(n_images, -1).max(axis=1)[:, None, None] + 1e-6
        gammas = np.array([_log_uniform(rng, config.gamma) for _ in range(n_images)], np.float32)
        out = peak * (out / peak) ** gammas[:, None, None]
    out = out * bias_field(out.shape[1:], rng, config.bias)[None]
    if config.banding and rng.random() < config.banding:
        out = out * banding_field(out.shape[1:], rng)[None]
    if config.blur > 0:
        sigma = rng.uniform(0, config.blur)
        if sigma > 0.2:
            out = np.stack([ndimage.gaussian_filter(img, sigma) for img in out])
    if config.noise > 0:
        sigma = rng.uniform(0, config.noise) * float(out.mean() + 1e-6)
        if config.gaussian_noise and rng.random() < config.gaussian_noise:
            out = out + rng.normal(0, sigma, out.shape)
        else:
            real = out + rng.normal(0, sigma, out.shape)
            imag = rng.normal(0, sigma, out.shape)
            out = np.sqrt(real * real + imag * imag)
    return out.astype(np.float32)


def banding_field(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Multiplicative bSSFP banding: periodic dark stripes along a random, gently curved direction.

    >>> import numpy as np
    >>> field = banding_field((64, 64), np.random.default_rng(0))
    >>> bool(field.min() < 0.8), bool(field.max() <= 1.0)
    (True, True)
    """
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    angle = rng.uniform(0, np.pi)
    along = np.cos(angle) * x + np.sin(angle) * y + rng.uniform(-0.3, 0.3) * (x * x + y * y)
    phase = 2 * np.pi * (along * rng.uniform(0.7, 3.0) + rng.uniform(0, 1))
    depth = rng.uniform(0.3, 0.9)
    sharpness = rng.uniform(4.0, 20.0)
    return (1.0 - depth * np.exp(-sharpness * (1 - np.cos(phase)))).astype(np.float32)


def augment_channels(images: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Collapse, drop or shuffle the images ``[T, H, W]`` of a multi-image slice.

    The number of inputs stays ``T`` (the network's first layer is fixed); what changes
    is how many distinct contrasts arrive and in which order, so that the network cannot
    rely on one particular inversion image.

    >>> import numpy as np
    >>> images = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((4, 2, 2), np.float32)
    >>> out = augment_channels(images, np.random.default_rng(0), AugmentConfig(channel_collapse=1.0))
    >>> bool(np.allclose(out, out[0]))
    True
    """
    n_images = images.shape[0]
    if n_images == 1:
        return images
    if config.channel_collapse and rng.random() < config.channel_collapse:
        weights = rng.dirichlet(np.full(n_images, 0.3)).astype(np.float32)
        mix = np.tensordot(weights, images, axes=1)
        return np.repeat(mix[None], n_images, axis=0)
    if config.channel_drop and rng.random() < config.channel_drop:
        kept = np.sort(rng.choice(n_images, size=int(rng.integers(1, n_images)), replace=False))
        nearest = kept[np.abs(np.arange(n_images)[:, None] - kept[None, :]).argmin(axis=1)]
        images = images[nearest]
    if config.channel_shuffle and rng.random() < config.channel_shuffle:
        images = images[rng.permutation(n_images)]
    return images


def augment_slice(images: np.ndarray, dseg: np.ndarray, lesion: np.ndarray | None,
                  centre: tuple[float, float], scale: float | tuple, out_shape: tuple[int, int],
                  rng: np.random.Generator, config: AugmentConfig, normalise=None):
    """Crop + resample + augment one slice.

    Parameters
    ----------
    normalise : callable or None
        Applied to the whole (intensity-augmented) native slice ``[T, H, W]`` before it
        is resampled, as inference normalises whole slices before cropping; pixels
        outside the slice then read 0, the normalised mean.
    scale : float or (float, float)
        Output pixel size / native pixel size. When above 1.25 the slice is low-pass
        filtered first (Gaussian, sigma = (scale - 1) / 2), as
        :func:`score_gui.mdgru.preprocess.sample_crops` does at inference.

    Returns
    -------
    images : ndarray float32 ``[T, h, w]``
    dseg, lesion : ndarray uint8 ``[h, w]`` (lesion None when not given)
    """
    coords = sampling_grid(out_shape, centre, scale, rng, config)
    source = augment_channels(augment_intensity(images, rng, config), rng, config)
    if normalise is not None:
        source = normalise(source)
    steps = (scale, scale) if np.isscalar(scale) else tuple(scale)
    sigma = [(s - 1.0) / 2 if s > 1.25 else 0.0 for s in steps]
    if any(sigma):
        source = np.stack([ndimage.gaussian_filter(img, sigma) for img in source])
    warped = warp_images(source, coords)
    dseg_out = warp_labels(np.asarray(dseg, np.uint8), coords)
    lesion_out = None if lesion is None else warp_labels(np.asarray(lesion, np.uint8), coords)
    return warped, dseg_out, lesion_out
