"""The plan report (HTML) and its figures, from a case, its result and the metrics. No Slicer."""
