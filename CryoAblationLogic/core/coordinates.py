"""World coordinates: Slicer's RAS at every interface; ITK, DICOM and NRRD files use LPS.

The two differ by the sign of the first two axes, so one diagonal converts either way.
"""

from __future__ import annotations

import numpy as np

RAS_LPS_FLIP = np.array([-1.0, -1.0, 1.0])  # multiply a point or a direction's rows to convert
RAS_TO_LPS_MATRIX = np.diag([-1.0, -1.0, 1.0])
RAS_TO_LPS_MATRIX_4X4 = np.diag([-1.0, -1.0, 1.0, 1.0])


def distances_to_segment(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Distance (mm) of each point (n × 3) to the segment start–end; a zero-length segment is its
    point."""
    axis = np.asarray(end, float) - np.asarray(start, float)
    length2 = float(axis @ axis)
    t = np.zeros(len(points)) if length2 == 0 else np.clip(((points - start) @ axis) / length2, 0.0, 1.0)
    return np.linalg.norm(points - (start + t[:, None] * axis), axis=1)
