"""Ice-ball physics: material library, probe catalog and the enthalpy bioheat solver.

Heavy modules (numba kernels) are imported lazily by :mod:`.simulation`.
"""
