"""MRML adapters: planning inputs and simulation results as nodes of a Slicer scene.

Every function here takes the scene (``vtkMRMLScene``) as an argument and never touches Qt,
``slicer.app``, ``slicer.util`` or ``slicer.mrmlScene``, so the same code runs inside Slicer and,
for the tests, under ``slicer-core`` (real MRML without Qt). Only the ``slicer`` module's VTK
classes are used; they are imported inside the modules, so ``import CryoAblationLogic`` stays
light where no scene is wanted.

Modules, one job each:

- :mod:`.app` — a scene set up the way Slicer (and trame-slicer's ``SlicerApp``) sets it up,
  ``.mrb`` save and load;
- :mod:`.volumes` — numpy fields on a :class:`~CryoAblationLogic.grid.Grid` ↔ volume nodes,
  SimpleITK resampling;
- :mod:`.parameters` — the ``CryoAblation`` parameter node (plan settings and node references);
- :mod:`.probes` — cryoprobes as markups line nodes, with needle models that follow them;
- :mod:`.inputs` — image volume and segmentation, segment roles and materials;
- :mod:`.case_io` — scene → case (``case-format.md``) and case file → scene;
- :mod:`.colors` — the temperature colour table and the isotherm level table;
- :mod:`.isotherms` — contour a temperature field into an isotherm segmentation;
- :mod:`.results` — temperature volumes, playback sequences, metrics tables and plots;
- :mod:`.preview` — the debounced live preview and the cancellable full run.
"""
