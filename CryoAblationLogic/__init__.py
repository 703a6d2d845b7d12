"""CryoAblationLogic — everything below the Slicer widget: research use only, not a medical device.

Layers (dependencies point one way, top to bottom):

- front ends: ``CryoAblationLogic.cli`` (the ``cryoablation`` command) and the Slicer module
  ``CryoAblation/CryoAblation.py``; they only wire things together;
- MRML adapters: take an MRML scene as an argument, put nodes in and read nodes out;
- OpenIGTLink layer: sockets and messages, no Slicer;
- physics core: numpy/numba, no Slicer.

Conventions used throughout: millimetres, seconds and degrees Celsius at the interfaces; material
properties in SI units; world coordinates are Slicer's RAS; a field on a :class:`~.grid.Grid` is a
numpy array indexed ``[i, j, k]`` (x/R, y/A, z/S), i.e. ``field.shape == grid.size``.
"""

from CryoAblationLogic.core.about import RESEARCH_USE_NOTE, __version__

__all__ = ["RESEARCH_USE_NOTE", "__version__"]
