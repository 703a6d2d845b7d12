"""Slicer-side helpers of the CryoAblation module (SlicerHeart-style ``…Lib`` package beside the module)."""
