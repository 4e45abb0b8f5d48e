"""How the panes look: label colormaps, contour colours, pane titles and contrast limits.

Examples
--------
>>> hex_to_rgba("#00ff00").tolist()
[0.0, 1.0, 0.0, 1.0]
"""

from __future__ import annotations

import numpy as np

from score_gui import labels as lab
from score_gui.labels import LESION_VALUE

PANE_TITLES = {"1-5": "avg TI1-5 (GM/WM)", "6-8": "avg TI6-8 (cord/CSF)", "all": "avg all"}
"""Titles of the averages' panes (the inversion images are titled by their inversion times)."""

REFERENCE_COLORS = ("#00e5ff", "#ff4fd8", "#b6ff3b", "#ffffff", "#ff9f1a")
"""Colours that stand apart from the label colours (the source swatches of tests and legends)."""

AUTOMATIC_PREFIXES = ("score", "model")
"""Sources made by the models (``desc-score``, ``desc-model<NAME>``): drawn lighter than raters."""

LIGHTER = 0.45
"""How far an automatic source's outline colours are mixed towards white."""


def is_automatic(who: str) -> bool:
    """Whether ``who``'s labels were made by the models, not drawn by a rater.

    >>> is_automatic("score"), is_automatic("modelAfold1"), is_automatic("raterA")
    (True, True, False)
    """
    return who.startswith(AUTOMATIC_PREFIXES)


def outline_colors(automatic: bool = False) -> dict[int, np.ndarray]:
    """RGBA per label value for other sources' outlines, in the paper's colours (Figures 2-4).

    The canal's outline (value 1) draws the canal and the cord border in gold; the gray
    matter's values draw the GM/WM border (dark brown, or the horns' red, dark blue and
    the commissure's dark green); lesions purple. White matter draws no outline of its
    own: its borders are those of the canal and the gray matter, one line each.
    ``automatic`` sources are lighter (mixed towards white by :data:`LIGHTER`).

    >>> outline_colors()[lab.WM][3], outline_colors()[lab.CSF].round(2).tolist()
    (np.float64(0.0), [0.83, 0.63, 0.09, 1.0])
    """
    colors = {value: hex_to_rgba(color) for value, color in lab.LABEL_COLORS.items()}
    if automatic:
        for rgba in colors.values():
            rgba[:3] += LIGHTER * (1.0 - rgba[:3])
    colors[lab.OUTSIDE] = np.zeros(4)
    colors[lab.WM] = np.zeros(4)
    return colors


def outline_colormap(automatic: bool = False):
    """napari colormap of :func:`outline_colors`."""
    from napari.utils.colormaps import DirectLabelColormap

    colors = dict(outline_colors(automatic))
    colors[None] = np.zeros(4)
    return DirectLabelColormap(color_dict=colors)


def source_color(who: str) -> str:
    """One colour naming a source in legends and swatches: its cord outline's gold, lighter
    for an automatic source."""
    rgba = outline_colors(is_automatic(who))[lab.CSF]
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgba[:3])

FILLED_OPACITY = 0.45
"""Opacity of filled labels: the image under them must stay readable."""


def labels_colormap(opaque_background: bool = False):
    """napari colormap with the contract colours (:data:`score_gui.labels.LABEL_COLORS`).

    Parameters
    ----------
    opaque_background : bool
        Draw value 0 in its contract colour instead of transparent.

    Returns
    -------
    napari.utils.colormaps.DirectLabelColormap
    """
    from napari.utils.colormaps import DirectLabelColormap

    colors = {value: hex_to_rgba(color) for value, color in lab.LABEL_COLORS.items()}
    if not opaque_background:
        colors[0] = np.zeros(4)
    colors[None] = np.zeros(4)
    return DirectLabelColormap(color_dict=colors)


def single_color_colormap(color: str):
    """Every non-zero value in one colour (reference raters' contours).

    Parameters
    ----------
    color : str
        ``'#rrggbb'``.

    Returns
    -------
    napari.utils.colormaps.DirectLabelColormap
    """
    from napari.utils.colormaps import DirectLabelColormap

    rgba = hex_to_rgba(color)
    colors = {value: rgba for value in range(1, LESION_VALUE + 1)}
    colors[0] = np.zeros(4)
    colors[None] = np.zeros(4)
    return DirectLabelColormap(color_dict=colors)


def hex_to_rgba(color: str) -> np.ndarray:
    """``'#rrggbb'`` -> RGBA floats.

    Examples
    --------
    >>> hex_to_rgba("#ff0000").tolist()
    [1.0, 0.0, 0.0, 1.0]
    """
    color = color.lstrip("#")
    return np.array([int(color[i:i + 2], 16) / 255 for i in (0, 2, 4)] + [1.0])


def display_range(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Contrast limits from percentiles (robust to a few bright vessels or fat voxels).

    Parameters
    ----------
    image : numpy.ndarray
        Any shape; large images are subsampled in-plane (the percentiles barely move).
    low, high : float
        Percentiles of the lower and upper limit.

    Examples
    --------
    >>> display_range(np.arange(1001, dtype=np.float32))
    (5.0, 995.0)
    """
    sample = np.asarray(image)
    if sample.ndim >= 2 and sample.size > 200_000:
        sample = sample[..., ::2, ::2]
    lo, hi = (float(v) for v in np.percentile(sample, [low, high]))
    if not hi > lo:
        hi = lo + 1.0
    return lo, hi


class LabelsStyle:
    """How every pane's labels are drawn: filled or as contours, shown or not.

    Parameters
    ----------
    pool : PanePool
        The panes whose labels layers follow the style.
    """

    def __init__(self, pool):
        self.pool = pool
        self.contours = False
        self.visible = True

    def set(self, contours: bool | None = None, visible: bool | None = None) -> None:
        """Change either and restyle every labels layer."""
        if contours is not None:
            self.contours = bool(contours)
        if visible is not None:
            self.visible = bool(visible)
        self.apply()

    def apply(self, panes=None) -> None:
        """Style the labels of ``panes`` (default: every pane)."""
        for pane in self.pool.panes if panes is None else panes:
            pane.labels.contour = 1 if self.contours else 0
            pane.labels.opacity = self.opacity()

    def opacity(self) -> float:
        """Opacity of the labels layers. Hiding uses opacity, not visibility: a hidden master
        would stop being sliced and painted."""
        if not self.visible:
            return 0.0
        return 1.0 if self.contours else FILLED_OPACITY
