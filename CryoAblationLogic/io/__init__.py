"""Files in and out: simulation case files, result folders, NRRD volumes, the built-in phantom and the
demo case. No Slicer."""
