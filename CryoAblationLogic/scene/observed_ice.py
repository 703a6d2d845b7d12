"""The ice the live MR images show, in the scene: an "Observed ice" segmentation, a table of the
observed ice against the prediction over time, and a chart of it, in the live folder.

Fed by a live session's :class:`~CryoAblationLogic.live.ice_tracking.IceTracker` (the session made
with ``track_ice=True``, as :func:`~CryoAblationLogic.live.runner.open_session` makes it):

- **Observed ice** (``vtkMRMLSegmentationNode``): one segment, the observed ice map on the plan
  grid (each voxel as the latest image that covered it showed it) as a closed surface, outlined in
  the slice views like the isotherms, in the colour of ice;
- **Observed vs predicted ice** (``vtkMRMLTableNode``): one row per image segmented: procedure time
  (min), image, kind, observed and predicted size (ml for a volume, cm² for a slice, in its
  plane), Dice, mean and max surface distance (mm), the nearest critical structure's distance from
  the observed ice edge (mm) and the warnings;
- **Observed vs predicted chart** (``vtkMRMLPlotChartNode``): Dice over procedure time, one line
  per image stream (the volume and each slice plane).

Refreshed by :meth:`ObservedIceView.refresh` when the tracker has segmented a new image (the live
scene calls it on every step; nothing is redrawn otherwise).
"""

from __future__ import annotations

import numpy as np
from slicer import vtkSegmentation

from CryoAblationLogic.core.isotherms import sensor_colour
from CryoAblationLogic.scene import isotherms, tables

OBSERVED_ICE_NODE_NAME = "Observed ice"
OBSERVED_TABLE_NAME = "Observed vs predicted ice"
OBSERVED_CHART_NAME = "Observed vs predicted chart"
OBSERVED_SEGMENT_ID = "observed_ice"
ICE_RGB = (0.55, 0.85, 1.0)  # pale blue: ice, apart from the isotherms' colours


class ObservedIceView:
    """The observed ice of ``session`` (a :class:`~CryoAblationLogic.live.mode.LiveSession`) in
    ``scene``, under the folder ``folder``. Nodes of an earlier live session of that name are
    reused."""

    def __init__(self, scene, session, folder: str):
        self.scene = scene
        self.session = session
        self.folder = folder
        self.segmentation = tables.node_named(scene, "vtkMRMLSegmentationNode", OBSERVED_ICE_NODE_NAME)
        self.table = tables.node_named(scene, "vtkMRMLTableNode", OBSERVED_TABLE_NAME)
        self.chart = tables.node_named(scene, "vtkMRMLPlotChartNode", OBSERVED_CHART_NAME)
        self._shown_records = 0  # observed images shown (none until the first is segmented)
        self._charted: list[str] = []

    @property
    def tracker(self):
        return getattr(self.session, "ice", None)

    def refresh(self, force: bool = False) -> bool:
        """Show what the tracker has observed since the last refresh; False if nothing new."""
        tracker = self.tracker
        if tracker is None:
            return False
        observed = tracker.counts["observed"]
        if not force and observed == self._shown_records:
            return False
        self._show_segmentation(tracker)
        self._show_table(tracker)
        self._shown_records = observed
        return True

    def _show_segmentation(self, tracker) -> None:
        # the map as a field that is ≤ 0 in the ice: contoured like an isotherm, halfway between
        field = np.where(tracker.ice_map > 0, -1.0, 1.0).astype(np.float32)
        surface = isotherms.contour_isotherm(field, tracker.grid, 0.0)
        if self.segmentation is None:
            node = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", OBSERVED_ICE_NODE_NAME)
            node.GetSegmentation().SetSourceRepresentationName(isotherms.CLOSED_SURFACE)
            node.CreateDefaultDisplayNodes()
            isotherms.style_isotherm_display(node)
            tables.put_in_folder(self.scene, self.folder, [node])
            self.segmentation = node
        node = self.segmentation
        segmentation = node.GetSegmentation()
        was_modifying = node.StartModify()
        try:
            segment = segmentation.GetSegment(OBSERVED_SEGMENT_ID)
            if segment is None:
                node.AddSegmentFromClosedSurfaceRepresentation(
                    surface, OBSERVED_ICE_NODE_NAME, list(ICE_RGB), OBSERVED_SEGMENT_ID
                )
            else:
                segment.RemoveAllRepresentations()
                segment.AddRepresentation(isotherms.CLOSED_SURFACE, surface)
            segmentation.InvokeEvent(vtkSegmentation.SourceRepresentationModified)
        finally:
            node.EndModify(was_modifying)

    def _show_table(self, tracker) -> None:
        rows = [r for r in tracker.records if r.status == "observed"]
        values = [r.to_dict() for r in rows]

        def size(row: dict, key_volume: str, key_area: str):
            return row.get(key_volume) if key_volume in row else row.get(key_area)

        def nearest(row: dict):
            distances = [s.get("distance_mm") for s in row.get("structures", {}).values()]
            distances = [d for d in distances if d is not None]
            return min(distances) if distances else None

        columns = [
            tables.Column(
                "Time", [r.time_s / tables.SECONDS_PER_MINUTE for r in rows], "min", "procedure time"
            ),
            tables.Column("Image", [r.device for r in rows]),
            tables.Column("Kind", [r.kind for r in rows]),
            tables.Column(
                "Observed",
                [size(v, "volume_ml", "area_cm2") for v in values],
                "ml | cm²",
                "volume, or area in the slice",
            ),
            tables.Column(
                "Predicted",
                [size(v, "predicted_volume_ml", "predicted_area_cm2") for v in values],
                "ml | cm²",
                "0 °C zone of the live solver at the image's time",
            ),
            tables.Column("Dice", [v.get("dice") for v in values]),
            tables.Column("Mean surface distance", [v.get("mean_surface_distance_mm") for v in values], "mm"),
            tables.Column("Max surface distance", [v.get("max_surface_distance_mm") for v in values], "mm"),
            tables.Column(
                "Nearest critical structure",
                [nearest(v) for v in values],
                "mm",
                "from the observed ice edge (in the plane for a slice)",
            ),
            tables.Column("Warnings", ["; ".join(v.get("warnings", [])) or "-" for v in values]),
        ]
        if not rows:
            columns = [tables.Column("Time", [], "min")]
        if self.table is None:
            self.table = self.scene.AddNewNodeByClass("vtkMRMLTableNode", OBSERVED_TABLE_NAME)
            self.chart = self.scene.AddNewNodeByClass("vtkMRMLPlotChartNode", OBSERVED_CHART_NAME)
            tables.put_in_folder(self.scene, self.folder, [self.table, self.chart])
        # the chart: Dice of each image stream over time, in its own time column (NaN-padded)
        streams = list(dict.fromkeys(r.device for r in rows))
        length = max((sum(1 for r in rows if r.device == s) for s in streams), default=0)

        def padded(items: list) -> list:
            return items + [float("nan")] * (length - len(items))

        chart_columns = []
        for stream in streams:
            own = [(r, v) for r, v in zip(rows, values, strict=True) if r.device == stream]
            chart_columns += [
                tables.Column(
                    f"{stream} time", padded([r.time_s / tables.SECONDS_PER_MINUTE for r, _ in own]), "min"
                ),
                tables.Column(f"{stream} Dice", padded([v.get("dice") for _, v in own])),
            ]
        # the table shows the rows; the chart's columns live in a second, hidden-from-view table
        tables.set_table_columns(self.table, columns)
        chart_table = self._chart_table()
        tables.set_table_columns(chart_table, chart_columns or [tables.Column("Time", [], "min")])
        if streams != self._charted:
            tables.set_chart_series(
                self.scene,
                self.chart,
                chart_table,
                [f"{s} time" for s in streams],
                [(f"{s} Dice", s, sensor_colour(n)) for n, s in enumerate(streams)],
                title="Observed ice against the prediction",
                x_title="Procedure time (min)",
                y_title="Dice",
            )
            self._charted = streams

    def _chart_table(self):
        name = OBSERVED_CHART_NAME + " data"
        node = tables.node_named(self.scene, "vtkMRMLTableNode", name)
        if node is None:
            node = self.scene.AddNewNodeByClass("vtkMRMLTableNode", name)
            tables.put_in_folder(self.scene, self.folder, [node])
        return node
