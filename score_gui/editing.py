"""Editing a label map without a viewer: the working labels, painting, fill, undo and redo.

:class:`LabelEditor` owns the labels a rater edits, as two arrays ``[S, H, W]``:

- ``overlay``: the values shown, the dseg with lesion voxels as :data:`LESION_VALUE` (7);
- ``under``: the tissue class of every voxel, the one that counts under a lesion.

Every change goes through it: brush, eraser and polygon strokes (:meth:`LabelEditor.paint`
for each piece, :meth:`LabelEditor.commit` when the stroke ends), flood fill, copying a
neighbour slice, clearing, and programmatic replacements. It keeps nesting (gray matter
only inside the cord, horns only inside gray matter, lesions only inside the cord, see
:func:`score_gui.labels.constrain_paint`), keeps lesions apart from the tissue under them,
keeps one undo history across structures, and records per slice where its labels came
from (:data:`PROVENANCE`): drawn by a rater, or proposed by the models
(:meth:`LabelEditor.propose`, "start from the model") and then accepted as it is
(:meth:`LabelEditor.accept`) or edited. The provenance travels with the labels
(:meth:`LabelEditor.get_labels`, the sidecar's ``SliceProvenance`` written by
:func:`score_gui.labels.write_labels`); training skips slices still ``proposed``.

A viewer (``score_napari``'s ``ScoreViewer``) shows these arrays and forwards the strokes
its tools make; nothing here needs Qt or napari.

Examples
--------
>>> import numpy as np
>>> from score_gui import labels as lab
>>> editor = LabelEditor((2, 4, 4))
>>> whole_slice = (slice(0, 1), slice(0, 4), slice(0, 4))
>>> mask = np.ones((1, 4, 4), bool)
>>> editor.paint(whole_slice, mask, lab.GM) is None      # no cord yet: nesting refuses
True
>>> int(editor.paint(whole_slice, mask, lab.WM).sum())
16
>>> editor.commit(), editor.provenance
(True, ['drawn', ''])
>>> _ = editor.paint(whole_slice, mask, lab.GM); _ = editor.commit()
>>> editor.undo() is not None, int(editor.overlay[0, 0, 0])
(True, 2)
>>> editor.redo() is not None, int(editor.overlay[0, 0, 0])
(True, 3)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from score_gui import labels as lab
from score_gui.labels import (DRAWN, LESION_VALUE, PROPOSED, PROPOSED_ACCEPTED, PROPOSED_EDITED,
                              LabelMap)

PROVENANCE = ("", DRAWN, PROPOSED, PROPOSED_ACCEPTED, PROPOSED_EDITED)
"""Where a slice's labels came from: nothing yet, drawn by a rater, proposed by the models and
not reviewed, proposed and accepted as it was, proposed and then edited by the rater
(:data:`score_gui.labels.SLICE_PROVENANCE`)."""

_FROM_PROPOSAL = (PROPOSED, PROPOSED_ACCEPTED, PROPOSED_EDITED)


def edited_provenance(before: str) -> str:
    """A slice's provenance after a rater edits it: a proposal becomes ``proposed-edited``,
    anything else ``drawn``.

    Examples
    --------
    >>> edited_provenance("proposed"), edited_provenance("proposed-accepted"), edited_provenance("")
    ('proposed-edited', 'proposed-edited', 'drawn')
    """
    return PROPOSED_EDITED if before in _FROM_PROPOSAL else DRAWN

VALUE_TO_STRUCTURE = {lab.CSF: "canal", lab.WM: "cord", lab.GM: "gm", lab.ANTERIOR_HORNS: "horns",
                      lab.POSTERIOR_HORNS: "horns", lab.GRAY_COMMISSURE: "horns",
                      LESION_VALUE: "lesion"}
"""The ``LabelledStructures`` key (contract section 2) that painting a value adds."""


def compose_overlay(dseg: np.ndarray, lesion: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Dseg + lesion map -> (overlay with lesions as 7, tissue class under every voxel).

    Examples
    --------
    >>> overlay, under = compose_overlay(np.array([[2, 3]], np.uint8), np.array([[0, 1]], np.uint8))
    >>> overlay.tolist(), under.tolist()
    ([[2, 7]], [[2, 3]])
    """
    dseg = np.asarray(dseg, np.uint8)
    overlay = dseg.copy()
    if lesion is not None:
        overlay[np.asarray(lesion) > 0] = LESION_VALUE
    return overlay, dseg.copy()


def split_overlay(overlay: np.ndarray, under: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Overlay (lesions as 7) + tissue under lesions -> (dseg, lesion).

    Examples
    --------
    >>> dseg, lesion = split_overlay(np.array([[2, 7]], np.uint8), np.array([[2, 3]], np.uint8))
    >>> dseg.tolist(), lesion.tolist()
    ([[2, 3]], [[0, 1]])
    """
    is_lesion = overlay == LESION_VALUE
    dseg = np.where(is_lesion, under, overlay).astype(np.uint8)
    return dseg, is_lesion.astype(np.uint8)


def union_box(a: tuple, b: tuple) -> tuple:
    """The smallest box (tuple of slices) holding boxes ``a`` and ``b``.

    Examples
    --------
    >>> union_box((slice(0, 2), slice(3, 4)), (slice(1, 5), slice(0, 1)))
    (slice(0, 5, None), slice(0, 4, None))
    """
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))


@dataclass
class Edit:
    """One change of the working arrays inside a box: values (and slice provenance) before and after."""

    key: tuple
    old_overlay: np.ndarray
    new_overlay: np.ndarray
    old_under: np.ndarray
    new_under: np.ndarray
    old_provenance: tuple = ()
    new_provenance: tuple = ()


class LabelEditor:
    """The labels being edited, the rules of painting them, and their undo history.

    Parameters
    ----------
    shape : (S, H, W)
        The scan's label grid; :meth:`reset` changes it.

    Attributes
    ----------
    overlay, under : uint8 [S, H, W]
        Shown values (lesions as 7) and the tissue class under them. A viewer may wrap
        them without copying; the editor changes them in place, except :meth:`reset` to
        another shape.
    labelled : set of str
        Structures labelled (``LabelledStructures``); painting a value adds its structure.
    who : str
        Whose labels these are (``raterA``).
    nesting_aware : bool
        Restrict painting by nesting (default True).
    provenance : list of str
        Per slice, one of :data:`PROVENANCE`.
    history_limit : int
        Undo steps kept.
    """

    def __init__(self, shape: tuple[int, int, int] = (0, 0, 0)):
        self.overlay = np.zeros(shape, np.uint8)
        self.under = np.zeros(shape, np.uint8)
        self.labelled: set[str] = set()
        self.who = ""
        self.nesting_aware = True
        self.provenance: list[str] = [""] * shape[0]
        self.history_limit = 100
        self._staged: list[Edit] = []
        self._undo: list[list[Edit]] = []
        self._redo: list[list[Edit]] = []

    # ------------------------------------------------------------------------------------
    # Whole maps
    # ------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.overlay.shape

    def reset(self, shape: tuple[int, int, int]) -> bool:
        """Empty labels on a grid of ``shape``, no history; True when the arrays were replaced
        (another shape: whoever wraps them must take the new ones), False when zeroed in place."""
        shape = tuple(int(n) for n in shape)
        replaced = shape != self.overlay.shape
        if replaced:
            self.overlay = np.zeros(shape, np.uint8)
            self.under = np.zeros(shape, np.uint8)
        else:
            self.overlay[...] = 0
            self.under[...] = 0
        self.labelled = set()
        self.who = ""
        self.provenance = [""] * shape[0]
        self.clear_history()
        return replaced

    def set_labels(self, label_map: LabelMap, provenance: str = DRAWN) -> None:
        """Replace the labels (in place) by ``label_map``; its labelled slices get the
        provenance the map records (``label_map.provenance``, read from its sidecar), or
        ``provenance`` when it records none.

        Clears the undo history: loading is not an edit.
        """
        if provenance not in PROVENANCE:
            raise ValueError(f"provenance must be one of {PROVENANCE}, not {provenance!r}")
        if label_map.dseg.shape != self.overlay.shape:
            raise ValueError(f"labels of shape {label_map.dseg.shape} do not fit the scan "
                             f"{self.overlay.shape}")
        overlay, under = compose_overlay(label_map.dseg, label_map.lesion)
        self.overlay[...] = overlay
        self.under[...] = under
        self.labelled = set(label_map.labelled)
        self.who = label_map.who
        if label_map.provenance is not None:
            self.provenance = label_map.slice_provenance()
        else:
            labelled = label_map.labelled_slices()
            self.provenance = [provenance if on else "" for on in labelled]
        self.clear_history()

    def get_labels(self) -> LabelMap:
        """The labels as drawn: dseg and lesion map (split back from the overlay), with the
        provenance of every labelled slice (``""`` for unlabelled ones).

        The lesion map is given when lesions were labelled or some are drawn.
        """
        dseg, lesion = split_overlay(self.overlay, self.under)
        labelled = set(self.labelled)
        if lesion.any():
            labelled.add("lesion")
        label_map = LabelMap(dseg=dseg, lesion=lesion if "lesion" in labelled else None,
                             labelled=labelled, who=self.who)
        on = label_map.labelled_slices()
        label_map.provenance = [(self.provenance[s] or DRAWN) if on[s] else "" for s in range(len(on))]
        return label_map

    # ------------------------------------------------------------------------------------
    # Strokes
    # ------------------------------------------------------------------------------------
    def paint(self, key: tuple, mask: np.ndarray, value: int, selected: int | None = None) -> np.ndarray | None:
        """Paint ``value`` where ``mask`` is set inside box ``key`` (part of a stroke).

        ``value`` 0 is the eraser; with ``selected`` (the structure chosen in the tools) equal
        to :data:`LESION_VALUE` it removes lesions only, so the tissue under them shows again.
        Painting a tissue class over a lesion sets the class under it; the lesion stays.
        With :attr:`nesting_aware`, the mask is first restricted by
        :func:`score_gui.labels.constrain_paint`.

        The change joins the current stroke, which :meth:`commit` ends as one undo step.
        Returns the voxels of the box whose shown value changed (None when nothing
        changed at all, shown or under a lesion).
        """
        key = tuple(key)
        mask = np.asarray(mask, bool)
        old_overlay, old_under = self.overlay[key].copy(), self.under[key].copy()
        new_overlay, new_under = old_overlay.copy(), old_under.copy()
        is_lesion = old_overlay == LESION_VALUE
        if value == 0:
            if selected == LESION_VALUE:
                hit = mask & is_lesion
                new_overlay[hit] = old_under[hit]
            else:
                new_overlay[mask] = 0
                new_under[mask] = 0
        else:
            if self.nesting_aware:
                tissue = np.where(is_lesion, old_under, old_overlay)
                mask = mask & lab.constrain_paint(tissue, value)
            if value == LESION_VALUE:
                mark = mask & ~is_lesion
                new_under[mark] = old_overlay[mark]
                new_overlay[mark] = LESION_VALUE
            else:
                new_under[mask & is_lesion] = value
                plain = mask & ~is_lesion
                new_overlay[plain] = value
                new_under[plain] = value
        shown = new_overlay != old_overlay
        if not shown.any() and np.array_equal(new_under, old_under):
            return None
        self._stage(Edit(key, old_overlay, new_overlay, old_under, new_under))
        if value:
            self.labelled.add(VALUE_TO_STRUCTURE[value])
        return shown

    def commit(self) -> bool:
        """End the current stroke: its pieces become one undo step. False when it changed nothing."""
        if not self._staged:
            return False
        self._push(self._staged)
        self._staged = []
        return True

    @property
    def stroke_open(self) -> bool:
        """Whether painted pieces wait for :meth:`commit`."""
        return bool(self._staged)

    def fill(self, slice_index: int, point: tuple[int, int], value: int,
             selected: int | None = None) -> tuple | None:
        """Flood-fill the region of the shown value at ``point`` (row, col) on one slice
        (4-connected), as one undo step; returns the box changed, or None."""
        s, (row, col) = int(slice_index), (int(point[0]), int(point[1]))
        plane = self.overlay[s]
        regions, _ = ndimage.label(plane == plane[row, col])
        region = regions == regions[row, col]
        rows, cols = np.nonzero(region)
        key = (slice(s, s + 1), slice(int(rows.min()), int(rows.max()) + 1),
               slice(int(cols.min()), int(cols.max()) + 1))
        changed = self.paint(key, region[key[1:]][None], value, selected)
        self.commit()
        return key if changed is not None else None

    # ------------------------------------------------------------------------------------
    # Programmatic edits
    # ------------------------------------------------------------------------------------
    def replace(self, key: tuple, new_overlay: np.ndarray, new_under: np.ndarray) -> tuple:
        """Set box ``key`` to the given values as one undo step (nesting is not applied:
        the values come from labels that already follow it). Returns ``key``."""
        key = tuple(key)
        self._stage(Edit(key, self.overlay[key].copy(), np.asarray(new_overlay, np.uint8).copy(),
                         self.under[key].copy(), np.asarray(new_under, np.uint8).copy()))
        self.commit()
        return key

    def copy_from_neighbour(self, target: int, direction: int = -1) -> tuple | None:
        """Copy slice ``target + direction`` into slice ``target`` (undoable); returns the box
        changed, or None when there is no such slice."""
        if direction not in (-1, 1):
            raise ValueError("direction must be -1 or +1")
        source = target + direction
        if not 0 <= target < self.shape[0] or not 0 <= source < self.shape[0]:
            return None
        key = (slice(target, target + 1), slice(0, self.shape[1]), slice(0, self.shape[2]))
        return self.replace(key, self.overlay[source:source + 1], self.under[source:source + 1])

    def clear(self) -> tuple:
        """Erase every label (undoable); returns the box changed (all of it)."""
        key = tuple(slice(0, n) for n in self.shape)
        return self.replace(key, np.zeros_like(self.overlay), np.zeros_like(self.under))

    def set_provenance(self, slices, provenance: str) -> None:
        """Mark slices (indices) as :data:`PROVENANCE` ``provenance`` (not an undo step)."""
        if provenance not in PROVENANCE:
            raise ValueError(f"provenance must be one of {PROVENANCE}, not {provenance!r}")
        for s in slices:
            self.provenance[int(s)] = provenance

    # ------------------------------------------------------------------------------------
    # Proposals ("start from the model")
    # ------------------------------------------------------------------------------------
    def propose(self, proposal: LabelMap, slices=None, replace_drawn: bool = False) -> tuple | None:
        """Copy the models' labels into the working labels as a proposal, as one undo step.

        Parameters
        ----------
        proposal : LabelMap
            The ensemble's result on this scan (e.g. ``desc-score``).
        slices : indices, optional
            Slices to propose (default: every slice the proposal labels).
        replace_drawn : bool
            Also replace slices that already hold labels (default: only unlabelled slices
            and slices that are still unreviewed proposals get the proposal; a rater's work
            is never overwritten by accident).

        The proposed slices become ``proposed`` until the rater edits them
        (``proposed-edited``) or accepts them (:meth:`accept`, ``proposed-accepted``); undo
        restores their labels and provenance. The proposal's structures join
        :attr:`labelled`. Returns the box changed, or None when no slice was proposed.
        """
        if proposal.dseg.shape != self.overlay.shape:
            raise ValueError(f"proposal of shape {proposal.dseg.shape} does not fit the labels "
                             f"{self.overlay.shape}")
        self.commit()
        overlay, under = compose_overlay(proposal.dseg, proposal.lesion)
        offered = proposal.labelled_slices()
        wanted = np.flatnonzero(offered) if slices is None else [int(s) for s in slices if offered[int(s)]]
        current = self.overlay.reshape(self.shape[0], -1).any(axis=1)
        chosen = [s for s in wanted
                  if replace_drawn or not current[s] or self.provenance[s] == PROPOSED]
        if not chosen:
            return None
        edits = []
        for s in chosen:
            key = (slice(s, s + 1), slice(0, self.shape[1]), slice(0, self.shape[2]))
            edit = Edit(key, self.overlay[key].copy(), overlay[key].copy(), self.under[key].copy(),
                        under[key].copy(), (self.provenance[s],), (PROPOSED,))
            self._write(edit, undoing=False)
            edits.append(edit)
        self._push(edits)
        self.labelled |= set(proposal.labelled)
        box = edits[0].key
        for edit in edits[1:]:
            box = union_box(box, edit.key)
        return box

    def accept(self, slices) -> list[int]:
        """Accept proposed slices as they are (``proposed`` -> ``proposed-accepted``); returns
        the slices accepted (others keep their provenance). Not an undo step."""
        accepted = [int(s) for s in slices if self.provenance[int(s)] == PROPOSED]
        for s in accepted:
            self.provenance[s] = PROPOSED_ACCEPTED
        return accepted

    def unreviewed_slices(self) -> list[int]:
        """Slices still holding an unreviewed proposal (training leaves them out)."""
        return [s for s, value in enumerate(self.provenance) if value == PROPOSED]

    # ------------------------------------------------------------------------------------
    # History
    # ------------------------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> tuple | None:
        """Undo the last step (whatever structure it touched); returns the box changed, or None."""
        return self._replay(self._undo, self._redo, undoing=True)

    def redo(self) -> tuple | None:
        """Redo the last undone step; returns the box changed, or None."""
        return self._replay(self._redo, self._undo, undoing=False)

    def clear_history(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._staged = []

    def _stage(self, edit: Edit) -> None:
        """Write ``edit``'s new values and add it to the open stroke; its slices become drawn
        (a proposal: ``proposed-edited``)."""
        slices = range(*edit.key[0].indices(self.shape[0])) if edit.key else range(0)
        edit.old_provenance = tuple(self.provenance[s] for s in slices)
        edit.new_provenance = tuple(edited_provenance(p) for p in edit.old_provenance)
        self._write(edit, undoing=False)
        self._staged.append(edit)

    def _write(self, edit: Edit, undoing: bool) -> None:
        self.overlay[edit.key] = edit.old_overlay if undoing else edit.new_overlay
        self.under[edit.key] = edit.old_under if undoing else edit.new_under
        values = edit.old_provenance if undoing else edit.new_provenance
        for s, value in zip(range(*edit.key[0].indices(self.shape[0])), values):
            self.provenance[s] = value

    def _push(self, edits: list[Edit]) -> None:
        self._undo.append(edits)
        del self._undo[:-self.history_limit]
        self._redo.clear()

    def _replay(self, source: list, target: list, undoing: bool) -> tuple | None:
        if not source:
            return None
        edits = source.pop()
        for edit in (reversed(edits) if undoing else edits):
            self._write(edit, undoing)
        target.append(edits)
        key = edits[0].key
        for edit in edits[1:]:
            key = union_box(key, edit.key)
        return key
