"""Acquisition effects: coil bias field, Rician noise and motion ghosting.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> signed = np.full((2, 8, 8), -1.0, np.float32)
>>> magnitude = rician_magnitude(signed, 0.1, rng)
>>> bool(magnitude.min() >= 0), bool(abs(magnitude.mean() - 1.0) < 0.1)
(True, True)
"""

from __future__ import annotations

import numpy as np

DEGRADATIONS = ("motion", "arch_contact", "low_snr")
"""Reasons a slice may be degraded (recorded per slice in the phantom's info)."""

DEGRADE_RATE = 0.05


def bias_field(shape, pixel_size, center_px, coefficients) -> np.ndarray:
    """Smooth multiplicative coil sensitivity, 1 at the canal.

    A left-right and antero-posterior gradient (the posterior neck coil makes the back of
    the neck brighter) and a radial fall-off, over the field of view in mm.
    """
    gx, gy, radial = coefficients
    rows = (np.arange(shape[0], dtype=np.float32) - center_px[0]) * pixel_size[0] / 60.0
    cols = (np.arange(shape[1], dtype=np.float32) - center_px[1]) * pixel_size[1] / 60.0
    log_field = gy * rows[:, None] + gx * cols[None, :] - radial * (rows[:, None] ** 2 + cols[None, :] ** 2)
    return np.exp(log_field).astype(np.float32)


def rician_magnitude(signed: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of a signed signal plus complex Gaussian noise (Rician statistics)."""
    real = signed + rng.standard_normal(signed.shape, dtype=np.float32) * np.float32(sigma)
    imag = rng.standard_normal(signed.shape, dtype=np.float32) * np.float32(sigma)
    return np.sqrt(real * real + imag * imag)


def motion_ghosting(signed: np.ndarray, rng: np.random.Generator, pixel_size_mm: float,
                    axis: int = -2, n_shots: int = 16, amplitude_mm: float = 1.5) -> np.ndarray:
    """Ghosts along the phase-encode ``axis`` from motion between the shots of a segmented cine.

    Each shot fills every ``n_shots``-th k-space line; a rigid displacement per shot is a
    linear phase on its lines, so the image gets replicas spaced ``N / n_shots`` pixels
    apart along the phase-encode direction. Returns a complex array.
    """
    n = signed.shape[axis]
    kspace = np.fft.fft(signed.astype(np.complex64), axis=axis)
    freqs = np.fft.fftfreq(n)  # cycles per pixel
    shot = np.arange(n) % n_shots
    shift_px = rng.normal(0, amplitude_mm / pixel_size_mm, size=n_shots)
    phase = np.exp(-2j * np.pi * freqs * shift_px[shot]).astype(np.complex64)
    shape = [1] * signed.ndim
    shape[axis] = n
    return np.fft.ifft(kspace * phase.reshape(shape), axis=axis).astype(np.complex64)


def rician_magnitude_complex(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Like :func:`rician_magnitude` for a complex signal (after ghosting)."""
    noise = rng.standard_normal((2, *signal.shape), dtype=np.float32) * np.float32(sigma)
    return np.abs(signal + noise[0] + 1j * noise[1]).astype(np.float32)
