"""Select an object instead of painting it: a box around it -> a hole mask (OpenCV's GrabCut, no weights);
and grow or shrink a mask, selected or painted, by N pixels.

>>> picture = np.full((120, 160, 3), 200, np.uint8)
>>> _ = cv2.circle(picture, (80, 60), 30, (200, 30, 30), -1)
>>> hole = select_object(picture, (40, 20, 120, 100))
>>> bool(hole[60, 80]), bool(hole[5, 5]), bool(0.8 < hole.sum() / (np.pi * 30**2) < 1.4)
(True, False, True)
"""

from __future__ import annotations

import cv2
import numpy as np

from .errors import InpaintlabError

SELECT_MAX_SIDE = 1024  # GrabCut works on the picture shrunk to this long side (its cost grows with pixels)


def select_object(
    picture: np.ndarray, box: tuple[int, int, int, int], grow: int = 0, iterations: int = 5, max_side: int = SELECT_MAX_SIDE
) -> np.ndarray:
    """The object inside ``box`` (x0, y0, x1, y1 in pixels, end-exclusive) of (H,W,3) uint8 ``picture``:
    (H,W) bool, True = hole. GrabCut (Rother et al. 2004) models the colours outside the box as background;
    the mask is grown (``grow`` > 0) or shrunk (< 0) by that many pixels, since a fill needs a little margin
    around an object's edge to leave no halo."""
    height, width = picture.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, x1 = sorted((max(0, min(width, x0)), max(0, min(width, x1))))
    y0, y1 = sorted((max(0, min(height, y0)), max(0, min(height, y1))))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise InpaintlabError(
            f"the selection box {box} is empty inside the {width}x{height} picture; drag a box around the object"
        )
    if (x1 - x0) * (y1 - y0) >= 0.98 * width * height:
        raise InpaintlabError("the selection box covers the whole picture; leave some background around the object")
    scale = min(1.0, max_side / max(height, width))
    small = cv2.resize(picture, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    rect = (int(x0 * scale), int(y0 * scale), max(1, int((x1 - x0) * scale)), max(1, int((y1 - y0) * scale)))
    labels = np.zeros(small.shape[:2], np.uint8)
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's k-means draws from OpenCV's thread RNG: the same box gives the same mask
    cv2.grabCut(np.ascontiguousarray(small[:, :, ::-1]), labels, rect, background, foreground, iterations, cv2.GC_INIT_WITH_RECT)
    chosen = np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    hole = cv2.resize(chosen, (width, height), interpolation=cv2.INTER_NEAREST)
    return grow_mask(hole.astype(bool), grow)


def grow_mask(hole: np.ndarray, by: int) -> np.ndarray:
    """(H,W) bool hole grown (``by`` > 0) or shrunk (< 0) by ``by`` pixels with OpenCV's elliptic (round) element.

    >>> hole = np.zeros((9, 9), bool); hole[4, 4] = True
    >>> int(grow_mask(hole, 2).sum()), int(grow_mask(grow_mask(hole, 2), -2).sum())
    (17, 1)
    """
    if not by:
        return hole.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(by) + 1, 2 * abs(by) + 1))
    return (cv2.dilate if by > 0 else cv2.erode)(hole.astype(np.uint8), kernel).astype(bool)


__all__ = ["SELECT_MAX_SIDE", "grow_mask", "select_object"]
