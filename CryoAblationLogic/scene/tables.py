"""Table and plot-chart nodes: numbers of a result as Slicer shows them (Tables and Plots modules)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from slicer import vtkMRMLPlotSeriesNode, vtkMRMLSubjectHierarchyNode
from vtkmodules.vtkCommonCore import vtkDoubleArray, vtkStringArray


@dataclass
class Column:
    name: str
    values: Sequence  # numbers (a double column) or strings (a string column)
    unit: str = ""
    description: str = ""


def get_or_create(scene, class_name: str, name: str, parameters=None, role: str | None = None):
    """The node the parameter node references under ``role``, else a new one."""
    node = parameters.get(role) if parameters is not None and role else None
    if node is None or not node.IsA(class_name):
        node = scene.AddNewNodeByClass(class_name, scene.GenerateUniqueName(name))
        if parameters is not None and role:
            parameters.set(role, node)
    return node


def node_named(scene, class_name: str, name: str):
    """The first node of that class and name in ``scene`` (one of an earlier live session, to be
    reused), or None."""
    nodes = scene.GetNodesByClassByName(class_name, name)
    return nodes.GetItemAsObject(0) if nodes.GetNumberOfItems() else None


def put_in_folder(scene, folder_name: str, nodes) -> None:
    """Group nodes under a subject-hierarchy folder (Slicer's Data module tree), made if missing."""
    hierarchy = vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if hierarchy is None:
        return
    root = hierarchy.GetSceneItemID()
    folder = hierarchy.GetItemChildWithName(root, folder_name)
    if not folder:
        folder = hierarchy.CreateFolderItem(root, folder_name)
    for node in nodes:
        if node is None:
            continue
        item = hierarchy.GetItemByDataNode(node)
        if not item:  # Slicer's Qt plugins add every node; without Qt, add it here
            hierarchy.CreateItem(folder, node)
        elif hierarchy.GetItemParent(item) != folder:
            hierarchy.SetItemParent(item, folder)


def set_table_columns(table_node, columns: Sequence[Column]) -> None:
    """Replace the table's content with ``columns`` (all of one length)."""
    lengths = {len(column.values) for column in columns}
    if len(lengths) > 1:
        raise ValueError(f"table {table_node.GetName()!r}: columns differ in length {sorted(lengths)}")
    was_modifying = table_node.StartModify()
    try:
        table = table_node.GetTable()
        while table.GetNumberOfColumns():
            table.RemoveColumn(0)
        for column in columns:
            values = list(column.values)
            if values and isinstance(values[0], str):
                array = vtkStringArray()
                for value in values:
                    array.InsertNextValue(value)
            else:
                array = vtkDoubleArray()
                for value in values:
                    array.InsertNextValue(float(value) if value is not None else float("nan"))
            array.SetName(column.name)
            table_node.AddColumn(array)
            if column.unit:
                table_node.SetColumnUnitLabel(column.name, column.unit)
            if column.description:
                table_node.SetColumnDescription(column.name, column.description)
        table_node.SetUseColumnTitleAsColumnHeader(True)
        table_node.SetLocked(True)  # results are computed, not typed in
        table.Modified()
    finally:
        table_node.EndModify(was_modifying)


def table_column(table_node, name: str) -> list:
    """A column's values (floats or strings), for tests and reports."""
    array = table_node.GetTable().GetColumnByName(name)
    if array is None:
        raise KeyError(f"table {table_node.GetName()!r} has no column {name!r}")
    if isinstance(array, vtkStringArray):
        return [array.GetValue(i) for i in range(array.GetNumberOfValues())]
    return [array.GetValue(i) for i in range(array.GetNumberOfTuples())]


def set_chart_series(
    scene,
    chart_node,
    table_node,
    x_column: str | Sequence[str],
    series: Sequence[tuple[str, str, tuple[float, float, float]]],
    *,
    title: str,
    x_title: str,
    y_title: str,
) -> list:
    """Make the chart plot ``series`` = ``[(y column, legend, rgb), ...]`` against ``x_column``
    (one name for all, or one per series) as lines; old series of the chart are removed."""
    old = [chart_node.GetNthPlotSeriesNode(i) for i in range(chart_node.GetNumberOfPlotSeriesNodes())]
    chart_node.RemoveAllPlotSeriesNodeIDs()
    for node in old:
        if node is not None:
            scene.RemoveNode(node)
    x_columns = [x_column] * len(series) if isinstance(x_column, str) else list(x_column)
    created = []
    for (y_column, legend, rgb), x_name in zip(series, x_columns, strict=True):
        node = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", scene.GenerateUniqueName(legend))
        node.SetAndObserveTableNodeID(table_node.GetID())
        node.SetXColumnName(x_name)
        node.SetYColumnName(y_column)
        node.SetPlotType(vtkMRMLPlotSeriesNode.PlotTypeScatter)
        node.SetMarkerStyle(vtkMRMLPlotSeriesNode.MarkerStyleNone)
        node.SetLineStyle(vtkMRMLPlotSeriesNode.LineStyleSolid)
        node.SetColor(*rgb)
        chart_node.AddAndObservePlotSeriesNodeID(node.GetID())
        created.append(node)
    chart_node.SetTitle(title)
    chart_node.SetXAxisTitle(x_title)
    chart_node.SetYAxisTitle(y_title)
    return created


SECONDS_PER_MINUTE = 60.0


def time_columns(
    histories: dict[str, tuple[np.ndarray, np.ndarray]], unit: str
) -> tuple[list[Column], list[str]]:
    """Columns for several time series: one shared ``Time`` column when all share their times,
    else a time column per series, in minutes (series times are in seconds; the charts, the report
    and the protocol all speak minutes). Returns the columns and each series' time column name."""
    items = list(histories.items())
    if not items:
        return [], []
    first_t = np.asarray(items[0][1][0], dtype=float)
    shared = all(
        len(t) == len(first_t) and np.allclose(np.asarray(t, dtype=float), first_t) for _, (t, _) in items
    )
    columns: list[Column] = []
    x_names: list[str] = []
    if shared:
        columns.append(Column("Time", first_t / SECONDS_PER_MINUTE, "min"))
    for name, (t, values) in items:
        if shared:
            x_names.append("Time")
        else:
            columns.append(Column(f"{name} time", np.asarray(t, dtype=float) / SECONDS_PER_MINUTE, "min"))
            x_names.append(f"{name} time")
        columns.append(Column(name, np.asarray(values, dtype=float), unit))
    return columns, x_names
