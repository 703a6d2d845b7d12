"""Live mode without Slicer: the procedure journal and the scanner/console message mapping."""
