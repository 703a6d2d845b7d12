"""The bottom layer: the plan's dataclasses (no parsing), the voxel grid, protocols, isotherm levels
and colours, RAS↔LPS, errors and the location of the shipped resources. numpy only."""
