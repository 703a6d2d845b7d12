"""MRML adapters: planning inputs and simulation results as nodes of a Slicer scene.

Every function here takes the scene (``vtkMRMLScene``) as an argument and never touches Qt,
``slicer.app``, ``slicer.util`` or ``slicer.mrmlScene``, so the same code runs inside Slicer and,
for the tests, under ``slicer-core`` (real MRML without Qt). Only the ``slicer`` module's VTK
classes are used; ``import CryoAblationLogic`` does not import this package, so the rest of the
package works where no ``slicer`` module exists.

Modules, one job each:

- :mod:`.app` — a scene set up the way Slicer (and trame-slicer's ``SlicerApp``) sets it up,
  ``.mrb`` save and load;
- :mod:`.volumes` — numpy fields on a :class:`~CryoAblationLogic.core.grid.Grid` ↔ volume nodes,
  SimpleITK resampling;
- :mod:`.parameters` — the ``CryoAblation`` parameter node (plan settings and node references);
- :mod:`.probes` — cryoprobes as markups line nodes, with needle models that follow them;
- :mod:`.inputs` — image volume and segmentation, segment roles and materials;
- :mod:`.case_io` — scene → case (``docs/case-format.md``) and case file → scene;
- :mod:`.colors` — the temperature colour table and the isotherm level table;
- :mod:`.isotherms` — contour a temperature field into an isotherm segmentation;
- :mod:`.results` — temperature volumes, isotherms, playback sequences, ice-volume and sensor plots;
- :mod:`.tables` — table and plot-chart node helpers;
- :mod:`.workflow` — scene → simulation → results, metrics and warnings; the background job
  with progress and cancel;
- :mod:`.preview` — the debounced live preview while probes are dragged;
- :mod:`.planning` — the planning session: what the Slicer module's panel does to a plan;
- :mod:`.solver_process` — the full run and the preview in worker processes (threads starve in Slicer);
- :mod:`.live_link`, :mod:`.live_process` — live mode in the scene; its session, solver and links
  in a worker process;
- :mod:`.phantom_scene`, :mod:`.demo_scene` — the built-in phantom as a planning scene, and the
  demo's scene and report.

In Slicer, the module passes ``slicer.mrmlScene`` (and ``slicer.modules.sequences.logic()`` where a
sequences logic is asked for); headless, :func:`.app.create_scene_app` makes an equivalent scene.
"""
