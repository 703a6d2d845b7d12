"""CryoAblationLogic — everything below the Slicer widget: research use only, not a medical device.

Layers, one sub-package each, from the top (``pyproject.toml``'s import-linter contracts enforce
them; a layer imports only from the layers below it, and siblings joined by "|" not from each other):

- ``cli`` — the ``cryoablation`` command (the Slicer module ``CryoAblation/`` is the other front end);
- ``scene`` — MRML adapters: they take a Slicer scene, put nodes in and read nodes out;
- ``live`` | ``report`` — live mode without Slicer | the plan report;
- ``io`` | ``analysis`` — case files, result folders, volumes, phantom | coverage, margins, checks;
- ``physics`` | ``igtl`` — the bioheat solver (numpy/numba) | OpenIGTLink (sockets and messages);
- ``core`` — the plan's dataclasses, grid, protocols, isotherm levels and colours, errors.

Conventions used throughout: millimetres, seconds and degrees Celsius at the interfaces; material
properties in SI units; world coordinates are Slicer's RAS; a field on a :class:`~.core.grid.Grid` is a
numpy array indexed ``[i, j, k]`` (x/R, y/A, z/S), i.e. ``field.shape == grid.size``.
"""

from CryoAblationLogic.core.about import RESEARCH_USE_NOTE, __version__

__all__ = ["RESEARCH_USE_NOTE", "__version__"]
