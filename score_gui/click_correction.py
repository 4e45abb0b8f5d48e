"""Click correction of the working labels: each click refines one structure, one undo step each.

:func:`score_gui.refine.refine_slice` re-decides a structure of one slice from clicks
(``+`` inside where the labels missed it, ``-`` where they overreach). A
:class:`ClickCorrector` applies that to a :class:`~score_gui.editing.LabelEditor`: the
rater's clicks on one slice and structure form a :class:`ClickSession`, so every click
is judged together with the earlier ones, and each click's result enters
the editor as one undo step (the slice becomes ``drawn``, or ``proposed-edited`` for a
proposal). The session follows the editor rather than the other way round: when the
slice's labels are no longer what the last click made (undo, redo, a brush stroke), it
continues from the click whose result they are, or starts afresh from the labels shown.

Nothing here needs Qt or napari; the viewer only turns a mouse click into
:meth:`ClickCorrector.click`.

Examples
--------
>>> import numpy as np
>>> from score_gui import labels as lab
>>> from score_gui.editing import LabelEditor
>>> truth = np.zeros((1, 40, 40), np.uint8); truth[0, 8:32, 8:32] = lab.WM
>>> truth[0, 14:26, 14:26] = lab.GM
>>> images = np.where(truth == lab.GM, 0.2, np.where(truth == lab.WM, 1.0, 0.0))[:, None]
>>> editor = LabelEditor((1, 40, 40))
>>> wrong = truth.copy(); wrong[0, 14:26, 20:26] = lab.WM          # half the GM missed
>>> editor.set_labels(lab.LabelMap(wrong, None, labelled=("cord", "gm")))
>>> corrector = ClickCorrector(editor, images, (0.7, 0.7))
>>> _ = corrector.click(0, 20, 23, True, "gm")
>>> int((editor.overlay == lab.GM).sum()), editor.provenance
(144, ['drawn'])
>>> _ = editor.undo(); int((editor.overlay == lab.GM).sum())
72
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from score_gui import labels as lab
from score_gui.editing import LabelEditor, compose_overlay, split_overlay
from score_gui.refine import (DEFAULT_SETTINGS, Click, RefineSettings, allowed_region, check_structure,
                              refine_slice)

STRUCTURE_OF_VALUE = {lab.WM: "cord", lab.GM: "gm", lab.ANTERIOR_HORNS: "gm", lab.POSTERIOR_HORNS: "gm",
                      lab.GRAY_COMMISSURE: "gm", lab.LESION_VALUE: "lesion"}
"""The structure a click refines when the rater has chosen a palette value (canal: none)."""


def structure_for_value(value: int) -> str | None:
    """The refinable structure of palette value ``value``, or None (the canal).

    Examples
    --------
    >>> structure_for_value(lab.POSTERIOR_HORNS), structure_for_value(lab.CSF)
    ('gm', None)
    """
    return STRUCTURE_OF_VALUE.get(int(value))


@dataclass
class ClickSession:
    """Clicks on one structure of one slice, with undo per click (or per scribble).

    Each click re-decides the structure from the labels the session started with and
    all clicks so far, so undoing a click gives exactly the labels before it. A scribble
    (:meth:`add_stroke`) is several clicks of one sign decided, and undone, together.

    Examples
    --------
    >>> d = np.zeros((30, 30), np.uint8); d[5:25, 5:25] = 2; d[10:20, 10:20] = 3
    >>> img = np.where(d == 3, 0.0, np.where(d == 2, 1.0, 0.3))[None]
    >>> wrong = d.copy(); wrong[10:20, 16:20] = 2
    >>> session = ClickSession(img, wrong, None, "gm")
    >>> int((session.add(Click(15, 18, True))[0] == 3).sum())
    100
    >>> int((session.undo()[0] == 3).sum()), session.clicks
    (60, [])
    """

    images: np.ndarray
    dseg: np.ndarray
    lesion: np.ndarray | None
    structure: str
    pixel_spacing: tuple[float, float] = (1.0, 1.0)
    prior: np.ndarray | None = None
    settings: RefineSettings = DEFAULT_SETTINGS
    strokes: list[list[Click]] = field(default_factory=list)
    _results: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        check_structure(self.structure)
        self.dseg = np.asarray(self.dseg, np.uint8).copy()
        self.lesion = None if self.lesion is None else np.asarray(self.lesion, np.uint8).copy()

    @property
    def result(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The labels after the clicks so far (the start labels before any)."""
        return self._results[-1] if self._results else (self.dseg, self.lesion)

    @property
    def clicks(self) -> list[Click]:
        """Every click so far, in order (a scribble's points included)."""
        return [click for stroke in self.strokes for click in stroke]

    @property
    def states(self) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """The labels before any click, then after each click or scribble."""
        return [(self.dseg, self.lesion), *self._results]

    def add(self, click: Click) -> tuple[np.ndarray, np.ndarray | None]:
        """Add a click; returns the refined ``(dseg, lesion)`` (a refused click changes nothing)."""
        return self.add_stroke([click])

    def add_stroke(self, clicks: Sequence[Click]) -> tuple[np.ndarray, np.ndarray | None]:
        """Add several clicks at once (a scribble), decided and undone together."""
        clicks = list(clicks)
        result = refine_slice(self.images, self.dseg, self.lesion, self.structure, [*self.clicks, *clicks],
                              self.pixel_spacing, self.prior, self.settings)
        self.strokes.append(clicks)
        self._results.append(result)
        return result

    def undo(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Remove the last click (or scribble); returns the labels before it."""
        return self.rewind(max(0, len(self.strokes) - 1))

    def rewind(self, n_strokes: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Keep only the first ``n_strokes`` clicks or scribbles; returns the labels after them."""
        del self.strokes[n_strokes:], self._results[n_strokes:]
        return self.result


class ClickCorrector:
    """Turns clicks on a slice into refinements of the editor's labels.

    Parameters
    ----------
    editor : LabelEditor
        The working labels (display grid ``[S, H, W]``).
    images : ndarray [S, T, H, W]
        The scan's images on the same grid (:attr:`score_gui.scan.Scan.images`).
    pixel_spacing : (float, float)
        Row and column pixel size in mm.
    settings : RefineSettings

    Attributes
    ----------
    priors : dict structure -> float ndarray [S, H, W]
        The models' probability of each structure on this scan
        (:attr:`score_gui.inference.SegmentationResult.probabilities`), when they ran:
        the walker then weighs it with the image (``benchmarks/bench_refine.py``: NoC@90
        for GM 2.94 clicks with it, 3.88 without).
    """

    def __init__(self, editor: LabelEditor, images: np.ndarray, pixel_spacing=(1.0, 1.0),
                 settings: RefineSettings = DEFAULT_SETTINGS):
        self.editor = editor
        self.images = images
        self.pixel_spacing = tuple(float(v) for v in pixel_spacing)
        self.settings = settings
        self.priors: dict[str, np.ndarray] = {}
        self.session: ClickSession | None = None
        self._slice: int | None = None

    def set_priors(self, probabilities: dict[str, np.ndarray] | None) -> None:
        """Use the models' structure probabilities from now on (None or empty: none)."""
        shape = self.editor.shape
        self.priors = {k: v for k, v in (probabilities or {}).items() if np.shape(v) == tuple(shape)}
        self.forget()

    @property
    def clicks(self) -> list[Click]:
        """The clicks whose result the labels of the session's slice show."""
        return [] if self.session is None else list(self.session.clicks)

    def click(self, slice_index: int, row: int, col: int, positive: bool, structure: str) -> tuple:
        """Refine ``structure`` of slice ``slice_index`` with one more click.

        Returns the box of the editor that changed (one undo step), or None when the
        click changed nothing.

        Raises
        ------
        ScoreInputError
            A click outside the slice, or a ``+`` where the structure may not lie (gray
            matter outside the cord); nothing changes.
        """
        return self.scribble(slice_index, [(row, col)], positive, structure)

    def scribble(self, slice_index: int, points, positive: bool, structure: str) -> tuple:
        """Like :meth:`click` for a short scribble: its ``(row, col)`` points are clicks of one
        sign, decided together as one undo step (points where a ``+`` may not lie are skipped,
        unless all are)."""
        s = int(slice_index)
        session = self._session_for(s, structure)
        clicks = [Click(int(r), int(c), bool(positive)) for r, c in dict.fromkeys((int(r), int(c)) for r, c in points)]
        if positive and len(clicks) > 1:
            allowed = allowed_region(split_overlay(self.editor.overlay[s], self.editor.under[s])[0], structure)
            inside = [c for c in clicks if 0 <= c.row < allowed.shape[0] and 0 <= c.col < allowed.shape[1]
                      and allowed[c.row, c.col]]
            clicks = inside or clicks
        dseg, lesion = session.add_stroke(clicks)
        overlay, under = compose_overlay(dseg, lesion)
        changed = (overlay != self.editor.overlay[s]) | (under != self.editor.under[s])
        if not changed.any():
            return None
        rows, cols = np.nonzero(changed)
        box = (slice(s, s + 1), slice(int(rows.min()), int(rows.max()) + 1),
               slice(int(cols.min()), int(cols.max()) + 1))
        key = self.editor.replace(box, overlay[box[1:]][None], under[box[1:]][None])
        self.editor.labelled.add(structure)
        return key

    def forget(self) -> None:
        """Start the next click afresh (another scan, or the images changed)."""
        self.session, self._slice = None, None

    def _session_for(self, s: int, structure: str) -> ClickSession:
        """The session whose latest result is the slice as shown, cut back or made anew."""
        dseg, lesion = split_overlay(self.editor.overlay[s], self.editor.under[s])
        session = self.session
        if session is not None and self._slice == s and session.structure == structure:
            states = session.states
            for n_strokes in range(len(states) - 1, -1, -1):
                if _same_labels(states[n_strokes], dseg, lesion):
                    session.rewind(n_strokes)
                    return session
        prior = self.priors.get(structure)
        self.session = ClickSession(np.asarray(self.images[s]), dseg, lesion, structure,
                                    self.pixel_spacing, None if prior is None else np.asarray(prior[s]),
                                    settings=self.settings)
        self._slice = s
        return self.session


def slice_prior(scan, slice_index: int, structure: str, models="default") -> np.ndarray:
    """The models' probability of ``structure`` on one slice of ``scan`` (a click prior).

    The ensemble (``default``, a model folder or an :class:`~score_gui.inference.Ensemble`)
    segments that slice alone, as ``score segment`` would, and its soft vote's
    probability is returned (``[H, W]`` float32).

    Raises
    ------
    ScoreInputError
        The models do not fit the scan, or cannot give that structure.
    """
    import dataclasses

    from score_gui.errors import ScoreInputError
    from score_gui.inference import Ensemble, segment_scan
    from score_gui.progress import drain

    ensemble = models if isinstance(models, Ensemble) else Ensemble.load(models)
    ensemble.check_fits(scan)
    s = int(slice_index)
    one = dataclasses.replace(
        scan, images=scan.images[s:s + 1], levels=None if scan.levels is None else scan.levels[s:s + 1],
        missing=None if scan.missing is None else scan.missing[s:s + 1])
    probabilities = drain(segment_scan(one, ensemble, workers=1)).probabilities
    if structure not in probabilities:
        raise ScoreInputError(None, f"these models give no probability of the {structure}")
    return probabilities[structure][0]


def _same_labels(state, dseg: np.ndarray, lesion: np.ndarray) -> bool:
    state_dseg, state_lesion = state
    state_lesion = np.zeros_like(dseg) if state_lesion is None else state_lesion
    return np.array_equal(state_dseg, dseg) and np.array_equal(state_lesion > 0, lesion > 0)
