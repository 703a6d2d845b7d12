"""Simulation results in the scene, the way SlicerRT shows isodoses.

- ``Temperature``: a scalar volume with the temperature colour table (its content follows the
  playback time); ``Minimum temperature``: the lowest temperature each voxel reached.
- ``Isotherms``: one closed-surface segment per level of the isotherm level table (outlines in
  slice views, surfaces in 3D), also following the playback time.
- Playback: a sequence browser over two synchronized sequences (temperature volumes and isotherm
  segmentations, indexed by time in seconds) whose proxy nodes are the two nodes above, so scrubbing
  time in Slicer's Sequences module moves both overlays.
- Tables and plot charts: ice-ball volume per isotherm over time, sensor temperatures over time.

Everything is referenced from the parameter node; running again updates the same nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from slicer import (
    vtkCodedEntry,
    vtkMRMLColorLegendDisplayNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLSliceCompositeNode,
)
from vtkmodules.vtkCommonCore import vtkObject

from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.isotherms import SENSOR_COLOURS
from CryoAblationLogic.scene import parameters as P
from CryoAblationLogic.scene.colors import (
    DEFAULT_ISOTHERM_LEVELS_C,
    create_isotherm_color_table,
    isotherm_levels,
    level_label,
)
from CryoAblationLogic.scene.colors import show_with_temperature_colors as _show_with_temperature_colors
from CryoAblationLogic.scene.isotherms import create_isotherm_segmentation, update_isotherm_segmentation
from CryoAblationLogic.scene.tables import (
    Column,
    get_or_create,
    put_in_folder,
    set_chart_series,
    set_table_columns,
    time_columns,
)
from CryoAblationLogic.scene.volumes import add_volume_node, set_volume_field, volume_field

RESULT_FOLDER = "Cryoablation result"
TIME_INDEX_NAME = "time"
TIME_UNIT = "s"
SENSOR_RGB = SENSOR_COLOURS  # one definition for Slicer and the report (core.isotherms)


@dataclass
class ResultNodes:
    temperature: Any
    min_temperature: Any
    isotherms: Any
    browser: Any
    temperature_sequence: Any
    isotherm_sequence: Any
    ice_volume_table: Any
    ice_volume_chart: Any
    sensor_table: Any
    sensor_chart: Any
    isotherm_volumes_ml: dict[float, float]  # contoured volumes of the final field


def levels_of(parameters: P.ParameterNode) -> list[tuple[float, tuple[float, float, float]]]:
    levels_node = parameters.get(P.ISOTHERM_LEVELS)
    if levels_node is None:
        levels_node = create_isotherm_color_table(parameters.scene, DEFAULT_ISOTHERM_LEVELS_C)
        parameters.set(P.ISOTHERM_LEVELS, levels_node)
    return isotherm_levels(levels_node)


def playback_frames(result) -> list[tuple[float, np.ndarray]]:
    """``[(time_s, field), ...]`` in time order: every snapshot, the result's ``playback_frames``
    when it has them (a frame every minute, :func:`CryoAblationLogic.cli.simulate.simulate_with_frames`),
    and the final field."""
    frames = {float(t): field for t, field in result.snapshots.items()}
    frames.update({float(t): field for t, field in (getattr(result, "playback_frames", None) or {}).items()})
    frames[float(result.simulated_s)] = result.temperature_final
    return sorted(frames.items())


def show_result(scene, parameters: P.ParameterNode, result) -> ResultNodes:
    """Put a ``SimulationResult`` into the scene (new nodes, or the ones the parameter node holds)."""
    grid: Grid = result.grid
    levels = levels_of(parameters)

    temperature = _volume(
        scene, parameters, P.TEMPERATURE_VOLUME, "Temperature", field=result.temperature_final, grid=grid
    )
    min_temperature = _volume(
        scene,
        parameters,
        P.MIN_TEMPERATURE_VOLUME,
        "Minimum temperature",
        field=result.min_temperature,
        grid=grid,
    )
    isotherms = parameters.get(P.ISOTHERM_SEGMENTATION)
    if isotherms is None:
        isotherms = create_isotherm_segmentation(scene, "Isotherms")
        parameters.set(P.ISOTHERM_SEGMENTATION, isotherms)
    volumes_ml = update_isotherm_segmentation(isotherms, result.temperature_final, grid, levels)
    preview = parameters.get(P.PREVIEW_SEGMENTATION)
    if preview is not None and preview.GetDisplayNode() is not None:
        preview.GetDisplayNode().SetVisibility(False)  # the full result replaces the quick preview

    browser, temperature_sequence, isotherm_sequence = _playback(
        scene, parameters, result, levels=levels, temperature=temperature, isotherms=isotherms
    )
    ice_table, ice_chart = _ice_volume_plot(scene, parameters, result, levels)
    sensor_table, sensor_chart = _sensor_plot(scene, parameters, result)
    result_nodes = [temperature, min_temperature, isotherms, browser, temperature_sequence, isotherm_sequence]
    put_in_folder(scene, RESULT_FOLDER, [*result_nodes, ice_table, ice_chart, sensor_table, sensor_chart])
    return ResultNodes(
        temperature=temperature,
        min_temperature=min_temperature,
        isotherms=isotherms,
        browser=browser,
        temperature_sequence=temperature_sequence,
        isotherm_sequence=isotherm_sequence,
        ice_volume_table=ice_table,
        ice_volume_chart=ice_chart,
        sensor_table=sensor_table,
        sensor_chart=sensor_chart,
        isotherm_volumes_ml=volumes_ml,
    )


def _volume(scene, parameters, role: str, name: str, *, field: np.ndarray, grid: Grid):
    node = parameters.get(role)
    if node is None:
        node = add_volume_node(scene, name, np.asarray(field, dtype=np.float32), grid)
        parameters.set(role, node)
    else:
        set_volume_field(node, np.asarray(field, dtype=np.float32), grid)
    node.SetAttribute("CryoAblation.Role", role)
    set_temperature_quantity(node)
    _show_with_temperature_colors(scene, node)
    return node


def set_temperature_quantity(node) -> None:
    """Mark a volume's voxels as temperatures in °C (Slicer shows the unit with the value)."""
    quantity = vtkCodedEntry()
    quantity.SetValueSchemeMeaning("246508008", "SCT", "Temperature")
    units = vtkCodedEntry()
    units.SetValueSchemeMeaning("Cel", "UCUM", "°C")
    node.SetVoxelValueQuantity(quantity)
    node.SetVoxelValueUnits(units)


def show_result_views(scene, image, temperature, *, opacity: float = 0.5, chart=None):
    """The image as background and the temperature as foreground (``opacity``) in the three slice
    views, a colour legend of the temperature (°C), the conventional layout with a plot view
    showing ``chart`` (e.g. the sensor chart). Returns the colour legend display node."""
    for layout_name in ("Red", "Yellow", "Green"):
        composite = _slice_composite(scene, layout_name)
        composite.SetBackgroundVolumeID(image.GetID() if image is not None else None)
        composite.SetForegroundVolumeID(temperature.GetID())
        composite.SetForegroundOpacity(opacity)
    legend = _colour_legend(scene, temperature)
    layout = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
    if layout is None:
        layout = scene.AddNewNodeByClass("vtkMRMLLayoutNode")
    arrangement = (
        layout.SlicerLayoutConventionalPlotView if chart is not None else layout.SlicerLayoutConventionalView
    )
    if layout.IsLayoutDescription(arrangement):
        layout.SetViewArrangement(arrangement)
    else:  # a scene without Slicer's layout manager (slicer-core): stored all the same, without a warning
        warnings_shown = vtkObject.GetGlobalWarningDisplay()
        vtkObject.GlobalWarningDisplayOff()
        layout.SetViewArrangement(arrangement)
        vtkObject.SetGlobalWarningDisplay(warnings_shown)
    if chart is not None:
        plot_view = scene.GetFirstNodeByClass("vtkMRMLPlotViewNode")
        if plot_view is None:
            plot_view = scene.AddNewNodeByClass("vtkMRMLPlotViewNode")
            plot_view.SetLayoutName("PlotView1")
        plot_view.SetPlotChartNodeID(chart.GetID())
    return legend


def _slice_composite(scene, layout_name: str):
    for node in scene.GetNodesByClass("vtkMRMLSliceCompositeNode"):
        if node.GetLayoutName() == layout_name:
            return node
    node = vtkMRMLSliceCompositeNode()
    node.SetLayoutName(layout_name)
    node.SetSingletonTag(layout_name)  # Slicer's views find their composite node by this tag
    return scene.AddNode(node)


def _colour_legend(scene, volume):
    display = volume.GetDisplayNode()
    for index in range(volume.GetNumberOfDisplayNodes()):
        node = volume.GetNthDisplayNode(index)
        if node is not None and node.IsA("vtkMRMLColorLegendDisplayNode"):
            return node
    if not scene.IsNodeClassRegistered("vtkMRMLColorLegendDisplayNode"):  # Slicer's Colors module does it
        scene.RegisterNodeClass(vtkMRMLColorLegendDisplayNode())
    legend = scene.AddNewNodeByClass("vtkMRMLColorLegendDisplayNode", f"{volume.GetName()} legend")
    legend.SetAndObservePrimaryDisplayNode(display)
    volume.AddAndObserveDisplayNodeID(legend.GetID())
    legend.SetTitleText("Temperature (°C)")
    legend.SetLabelFormat("%.0f")
    legend.SetVisibility(True)
    return legend


def _playback(scene, parameters, result, *, levels, temperature, isotherms):
    browser = parameters.get(P.PLAYBACK_BROWSER)
    temperature_sequence = browser.GetMasterSequenceNode() if browser is not None else None
    isotherm_sequence = browser.GetSequenceNode(isotherms) if browser is not None else None
    if temperature_sequence is None or isotherm_sequence is None:
        browser = None  # incomplete (edited by hand): start a new playback
        temperature_sequence = get_or_create(scene, "vtkMRMLSequenceNode", "Temperature over time")
        isotherm_sequence = get_or_create(scene, "vtkMRMLSequenceNode", "Isotherms over time")
    for sequence in (temperature_sequence, isotherm_sequence):
        sequence.RemoveAllDataNodes()
        sequence.SetIndexName(TIME_INDEX_NAME)
        sequence.SetIndexUnit(TIME_UNIT)
        sequence.SetIndexType(sequence.NumericIndex)
    for time_s, field in playback_frames(result):
        index = f"{time_s:g}"
        frame = vtkMRMLScalarVolumeNode()
        set_volume_field(frame, np.asarray(field, dtype=np.float32), result.grid)
        temperature_sequence.SetDataNodeAtValue(frame, index)
        frame_isotherms = vtkMRMLSegmentationNode()
        update_isotherm_segmentation(frame_isotherms, field, result.grid, levels)
        isotherm_sequence.SetDataNodeAtValue(frame_isotherms, index)
    if browser is None:
        browser = scene.AddNewNodeByClass(
            "vtkMRMLSequenceBrowserNode", scene.GenerateUniqueName("Ice-ball playback")
        )
        browser.SetAndObserveMasterSequenceNodeID(temperature_sequence.GetID())
        browser.AddSynchronizedSequenceNodeID(isotherm_sequence.GetID())
        # The proxies are the displayed result nodes themselves, so scrubbing moves the overlays.
        browser.AddProxyNode(temperature, temperature_sequence, False)
        browser.AddProxyNode(isotherms, isotherm_sequence, False)
        browser.SetSaveChanges(temperature_sequence, False)
        browser.SetSaveChanges(isotherm_sequence, False)
        parameters.set(P.PLAYBACK_BROWSER, browser)
    _remove_stray_proxies(scene, browser, (temperature_sequence, isotherm_sequence))
    browser.SetSelectedItemNumber(temperature_sequence.GetNumberOfDataNodes() - 1)  # the final state
    return browser, temperature_sequence, isotherm_sequence


def _remove_stray_proxies(scene, browser, sequences) -> None:
    """Slicer's sequences logic gives a new browser's sequences proxies of their own (named like
    the sequence) before ours replace them; those orphans would sit beside the result as
    duplicates (*Temperature over time*, *Isotherms over time*)."""
    for sequence in sequences:
        proxy = browser.GetProxyNode(sequence)
        for node in list(scene.GetNodesByName(sequence.GetName())):
            if node is not sequence and node is not proxy and not node.IsA("vtkMRMLSequenceNode"):
                scene.RemoveNode(node)


def recontour_isotherms(scene, parameters: P.ParameterNode) -> dict[float, float]:
    """Redo the isotherm segments (shown and every playback frame) after the level table was
    edited; returns the shown field's volumes per level. Does nothing before a first result."""
    temperature = parameters.get(P.TEMPERATURE_VOLUME)
    isotherms = parameters.get(P.ISOTHERM_SEGMENTATION)
    if temperature is None or isotherms is None or temperature.GetImageData() is None:
        return {}
    levels = levels_of(parameters)
    field, grid = volume_field(temperature)
    volumes = update_isotherm_segmentation(isotherms, field, grid, levels)
    browser = parameters.get(P.PLAYBACK_BROWSER)
    if browser is not None:
        temperature_sequence = browser.GetMasterSequenceNode()
        isotherm_sequence = browser.GetSequenceNode(isotherms)
        if temperature_sequence is not None and isotherm_sequence is not None:
            for item in range(temperature_sequence.GetNumberOfDataNodes()):
                index = temperature_sequence.GetNthIndexValue(item)
                frame_field, frame_grid = volume_field(temperature_sequence.GetNthDataNode(item))
                frame = isotherm_sequence.GetDataNodeAtValue(index)
                if frame is None:
                    frame = vtkMRMLSegmentationNode()
                    update_isotherm_segmentation(frame, frame_field, frame_grid, levels)
                    isotherm_sequence.SetDataNodeAtValue(frame, index)
                else:
                    update_isotherm_segmentation(frame, frame_field, frame_grid, levels)
    return volumes


def select_playback_time(browser, time_s: float, sequences_logic) -> float:
    """Show the frame nearest ``time_s`` (what dragging the time slider does); return its time."""
    sequence = browser.GetMasterSequenceNode()
    times = np.array([float(sequence.GetNthIndexValue(i)) for i in range(sequence.GetNumberOfDataNodes())])
    item = int(np.argmin(np.abs(times - time_s)))
    browser.SetSelectedItemNumber(item)
    sequences_logic.UpdateProxyNodesFromSequences(browser)
    return float(times[item])


def _ice_volume_plot(scene, parameters, result, levels):
    table = get_or_create(scene, "vtkMRMLTableNode", "Ice-ball volume", parameters, P.ICE_VOLUME_TABLE)
    chart = get_or_create(
        scene, "vtkMRMLPlotChartNode", "Ice-ball volume chart", parameters, P.ICE_VOLUME_CHART
    )
    histories = {}
    colours = []
    for level, rgb in levels:
        history = _history_for_level(result.ice_volume_history, level)
        if history is not None:
            histories[level_label(level)] = history
            colours.append(rgb)
    columns, x_names = time_columns(histories, "ml")
    set_table_columns(table, columns)
    set_chart_series(
        scene, chart, table, x_names,
        [(name, f"Ice ≤ {name}", rgb) for name, rgb in zip(histories, colours, strict=True)],
        title="Ice-ball volume", x_title="Time (min)", y_title="Volume (ml)",
    )  # fmt: skip
    return table, chart


def _history_for_level(history: dict, level: float):
    for key, value in history.items():
        if float(key) == float(level):
            return value
    return None


def _sensor_plot(scene, parameters, result):
    table = get_or_create(scene, "vtkMRMLTableNode", "Sensor temperatures", parameters, P.SENSOR_TABLE)
    chart = get_or_create(
        scene, "vtkMRMLPlotChartNode", "Sensor temperature chart", parameters, P.SENSOR_CHART
    )
    histories = {str(name): value for name, value in result.sensors.items()}
    columns, x_names = time_columns(histories, "°C")
    set_table_columns(table, columns or [Column("Time", [], "min")])
    set_chart_series(
        scene, chart, table, x_names,
        [(name, name, SENSOR_RGB[i % len(SENSOR_RGB)]) for i, name in enumerate(histories)],
        title="Sensor temperatures", x_title="Time (min)", y_title="Temperature (°C)",
    )  # fmt: skip
    return table, chart
