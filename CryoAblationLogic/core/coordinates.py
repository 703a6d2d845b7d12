"""World coordinates: Slicer's RAS at every interface; ITK, DICOM and NRRD files use LPS.

The two differ by the sign of the first two axes, so one diagonal converts either way.
"""

from __future__ import annotations

import numpy as np

RAS_LPS_FLIP = np.array([-1.0, -1.0, 1.0])  # multiply a point or a direction's rows to convert
RAS_TO_LPS_MATRIX = np.diag([-1.0, -1.0, 1.0])
RAS_TO_LPS_MATRIX_4X4 = np.diag([-1.0, -1.0, 1.0, 1.0])
