"""Live mode in a Slicer scene: what the scanner and the console send, mapped onto MRML nodes.

- IMAGE → one live volume node, updated in place (the voxel buffer is reused while the frame
  keeps its size and type, so views and slice logics keep their pipelines);
- TRANSFORM ``Probe<n>ToScanner`` → the probe's markups line (the plan's probe of that number,
  found by name) follows: tip = the pose's origin, entry up its z axis at the line's length;
- freeze/thaw/off → the live solver (:class:`~.mode.LiveSession`) → the overlay: a temperature
  volume and an isotherm segmentation (the scene adapters' ``mrml.volumes`` / ``mrml.isotherms``),
  refreshed once per :meth:`LiveScene.step` when the solver has a newer update;
- sensor readings → a table node (measured beside predicted).

Where the messages come from is a message source (``start``, ``stop``, ``poll`` → :data:`Polled`
items, ``send_scan_plane``, ``send_scanner_command``): inside Slicer with the OpenIGTLinkIF
module, :class:`ConnectorSource` observes the nodes its ``vtkMRMLIGTLConnectorNode`` creates and
turns them back into messages; elsewhere :class:`ClientSource` runs our own client
(:class:`~.link.LiveLink`). Messages the connector cannot carry (SENSOR, NDARRAY, POSITION) come
through our client beside it (:func:`choose_sources`). Both feed the same session and the same
nodes, and both journal what they receive, so a replay does not care which one ran.

Needs the ``slicer`` module (Slicer, or ``slicer-core`` headless); imported only by callers that
have a scene. In Slicer (the module's live tab):

    monitor = start_live_scene(slicer.mrmlScene, case, journal_path,
                                  scanner=Endpoint("server", port=18944),          # MR bridge connects
                                  console=Endpoint("client", console_host, 18945))  # we connect
    timer = qt.QTimer(); timer.timeout.connect(monitor.step); timer.start(20)
    ... after each step, monitor.events: the (peer, event) pairs it took (status lights, messages)
    ... monitor.send_scan_plane_from_slice(sliceNode); monitor.send_scanner_command("START_SEQUENCE")
    timer.stop(); monitor.stop()        # then write_live_results(monitor.session, out_dir) if wanted
"""

from __future__ import annotations

import time

import numpy as np
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonCore import vtkIdList
from vtkmodules.vtkCommonMath import vtkMatrix4x4

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.core.isotherms import sensor_colour
from CryoAblationLogic.igtl.inbox import LinkEvent, Received
from CryoAblationLogic.igtl.messages import (
    ImageMessage,
    Message,
    StatusMessage,
    StringMessage,
    TransformMessage,
)
from CryoAblationLogic.live.console import (
    SCAN_PLANE_DEVICE,
    Event,
    ProbePose,
    ScannerImage,
    Unrecognised,
    scan_plane_message,
    scanner_command,
)
from CryoAblationLogic.live.link import LiveLink
from CryoAblationLogic.live.mode import LiveSession, pose_to_tip_entry
from CryoAblationLogic.live.runner import LIVE_COALESCED, open_session
from CryoAblationLogic.scene import colors, isotherms, probes, tables, volumes
from CryoAblationLogic.scene.observed_ice import ObservedIceView

LIVE_FOLDER = "Cryoablation live"
IMAGE_NODE_NAME = "Live MR"
TEMPERATURE_NODE_NAME = "Live temperature"
ISOTHERM_NODE_NAME = "Live isotherms"
SENSOR_TABLE_NAME = "Live sensor readings"
SENSOR_CHART_NAME = "Live sensor chart"
CONTENT_EVENTS = ("ImageDataModifiedEvent", "TransformModifiedEvent", "TextModifiedEvent")
CONNECTOR_PEER = "OpenIGTLinkIF connector"
CONNECTOR_NODE_NAME = "CryoAblation MR bridge"

# What a source's poll returns, oldest first: (peer "scanner" or "console", the message received,
# its arrival time (Unix s), the events it carries (None: not interpreted yet)); or, for a link
# event or a command not acknowledged in time, (peer, None, time noticed, [that event]).
Polled = tuple[str, Message | None, float, list | None]


class LiveScene:
    """The scene nodes of live mode, fed by :meth:`apply` and refreshed by :meth:`refresh`."""

    def __init__(self, scene, session: LiveSession, level_table=None):
        self.scene = scene
        self.session = session
        if level_table is None:
            level_table = colors.create_isotherm_color_table(
                scene, session.case.outputs.isotherms_c or colors.DEFAULT_ISOTHERM_LEVELS_C
            )
        self.level_table = level_table
        # the nodes of an earlier live session in this scene are reused (live mode off and on again)
        self.image_node = _live_node(scene, "vtkMRMLScalarVolumeNode", IMAGE_NODE_NAME)
        self.temperature_node, self.isotherm_node = _live_pair(
            scene,
            ("vtkMRMLScalarVolumeNode", TEMPERATURE_NODE_NAME),
            ("vtkMRMLSegmentationNode", ISOTHERM_NODE_NAME),
        )
        self.sensor_table, self.sensor_chart = _live_pair(
            scene, ("vtkMRMLTableNode", SENSOR_TABLE_NAME), ("vtkMRMLPlotChartNode", SENSOR_CHART_NAME)
        )
        self.probe_lines: dict[int, object] = {}
        self.overlay_time_s: float | None = None
        self.overlay_volumes_ml: dict[float, float] = {}
        self.sensor_refresh_s = 1.0
        self._samples_shown = 0
        self._sensor_refreshed = -float("inf")
        self._charted: list[str] = []
        self.observed_ice = ObservedIceView(scene, session, LIVE_FOLDER)  # the ice the images show

    # --- images ---------------------------------------------------------------------------------

    def show_image(self, event: ScannerImage):
        """Put an MR frame into the live volume node (in place when size and type are unchanged)."""
        voxels = np.asarray(event.voxels)
        if voxels.ndim == 4 and voxels.shape[3] == 1:
            voxels = voxels[..., 0]
        node = self.image_node
        if node is None:
            node = self.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", IMAGE_NODE_NAME)
            node.CreateDefaultDisplayNodes()
            tables.put_in_folder(self.scene, LIVE_FOLDER, [node])
            self.image_node = node
        image = node.GetImageData()
        matrix = volumes.matrix_to_vtk(event.ijk_to_ras)
        was_modifying = node.StartModify()
        try:
            node.SetIJKToRASMatrix(matrix)
            if image is not None and image.GetDimensions() == voxels.shape and _same_type(image, voxels):
                target = volumes.image_data_to_array(image)  # a view of the node's buffer
                np.copyto(target, voxels)
                image.GetPointData().GetScalars().Modified()
                image.Modified()
            else:
                node.SetAndObserveImageData(volumes.field_to_image_data(voxels))
            node.Modified()
        finally:
            node.EndModify(was_modifying)
        return node

    # --- probes ---------------------------------------------------------------------------------

    def probe_line(self, number: int):
        """The plan's probe line of console probe ``number`` (by the plan's probe name), made from
        the plan if the scene has none."""
        if number in self.probe_lines:
            return self.probe_lines[number]
        name = self.session.probe_name(number)
        if name is None:
            return None
        line = next((n for n in probes.probe_nodes(self.scene) if n.GetName() == name), None)
        if line is None:
            spec = next(p for p in self.session.case.probes if p.name == name)
            line = probes.add_probe(self.scene, name, spec.tip_mm, spec.entry_mm, spec.model)
        self.probe_lines[number] = line
        return line

    def move_probe(self, event: ProbePose):
        line = self.probe_line(event.probe)
        if line is None:
            return None
        tip, entry = probes.probe_tip_entry(line)
        new_tip, new_entry = pose_to_tip_entry(event.matrix, float(np.linalg.norm(entry - tip)))
        was_modifying = line.StartModify()
        try:
            line.SetNthControlPointPositionWorld(probes.TIP_INDEX, *new_tip.tolist())
            line.SetNthControlPointPositionWorld(probes.ENTRY_INDEX, *new_entry.tolist())
        finally:
            line.EndModify(was_modifying)
        return line

    # --- overlay and sensors ---------------------------------------------------------------------

    def refresh_overlay(self, force: bool = False) -> bool:
        """Show the solver's latest field (temperature volume and isotherms) if it is newer."""
        session = self.session
        if not force and self.overlay_time_s == session.time_s:
            return False
        field = session.temperature_c
        grid = session.case.grid
        if self.temperature_node is None:
            self.temperature_node = volumes.add_volume_node(self.scene, TEMPERATURE_NODE_NAME, field, grid)
            colors.show_with_temperature_colors(self.scene, self.temperature_node)
            self.isotherm_node = isotherms.create_isotherm_segmentation(self.scene, ISOTHERM_NODE_NAME)
            tables.put_in_folder(self.scene, LIVE_FOLDER, [self.temperature_node, self.isotherm_node])
        else:
            volumes.set_volume_field(self.temperature_node, field, grid)
        self.overlay_volumes_ml = isotherms.update_isotherm_segmentation(
            self.isotherm_node, field, grid, colors.isotherm_levels(self.level_table)
        )
        self.overlay_time_s = session.time_s
        return True

    def refresh_sensor_table(self, force: bool = False) -> bool:
        """The readings beside the predictions: per sensor a time, a measured and a predicted
        column (shorter series padded with NaN), and a chart of them. Rewritten at most once per
        ``sensor_refresh_s`` (the table holds the whole procedure)."""
        samples = self.session.samples
        now = time.monotonic()
        if not force and (
            len(samples) == self._samples_shown or now - self._sensor_refreshed < self.sensor_refresh_s
        ):
            return False
        names = list(dict.fromkeys(s.name for s in samples))
        by_name = {name: [s for s in samples if s.name == name] for name in names}
        length = max((len(rows) for rows in by_name.values()), default=0)

        def padded(values: list[float]) -> list[float]:
            return values + [float("nan")] * (length - len(values))

        columns: list[tables.Column] = []
        x_names: list[str] = []
        series = []
        for index, (name, rows) in enumerate(by_name.items()):
            rgb = sensor_colour(index)
            columns += [
                tables.Column(
                    f"{name} time",
                    padded([r.time_s / tables.SECONDS_PER_MINUTE for r in rows]),
                    "min",
                    "procedure time",
                ),
                tables.Column(f"{name} measured", padded([r.measured_c for r in rows]), "°C"),
                tables.Column(
                    f"{name} predicted",
                    padded([r.predicted_c for r in rows]),
                    "°C",
                    "live solver, last update",
                ),
            ]
            x_names += [f"{name} time"] * 2
            series += [
                (f"{name} measured", f"{name} measured", rgb),
                (f"{name} predicted", f"{name} predicted", tuple(0.5 + 0.5 * c for c in rgb)),
            ]
        if self.sensor_table is None:
            self.sensor_table = self.scene.AddNewNodeByClass("vtkMRMLTableNode", SENSOR_TABLE_NAME)
            self.sensor_chart = self.scene.AddNewNodeByClass("vtkMRMLPlotChartNode", SENSOR_CHART_NAME)
            tables.put_in_folder(self.scene, LIVE_FOLDER, [self.sensor_table, self.sensor_chart])
        tables.set_table_columns(self.sensor_table, columns or [tables.Column("Time", [], "min")])
        if names != self._charted:  # new sensors: new series (the table's columns are observed)
            tables.set_chart_series(
                self.scene,
                self.sensor_chart,
                self.sensor_table,
                x_names,
                series,
                title="Sensor readings and prediction",
                x_title="Procedure time (min)",
                y_title="Temperature (°C)",
            )
            self._charted = names
        self._samples_shown = len(samples)
        self._sensor_refreshed = now
        return True

    # --- dispatch -------------------------------------------------------------------------------

    def apply(self, events: list[Event]) -> None:
        """Map events onto nodes (images, probe lines); the solver has them from the session."""
        for event in events:
            if isinstance(event, ScannerImage):
                self.show_image(event)
            elif isinstance(event, ProbePose):
                self.move_probe(event)

    def refresh(self) -> None:
        self.refresh_overlay()
        self.refresh_sensor_table()
        self.observed_ice.refresh()


def _live_node(scene, class_name: str, name: str):
    """The node of that class and name in the live folder of ``scene``, or None."""
    # Slicer itself: present only inside Slicer (or with slicer-core)
    from slicer import vtkMRMLSubjectHierarchyNode

    folders = vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    folder = folders.GetItemChildWithName(folders.GetSceneItemID(), LIVE_FOLDER) if folders else 0
    if not folder:
        return None
    children = vtkIdList()
    folders.GetItemChildren(folder, children)
    for index in range(children.GetNumberOfIds()):
        node = folders.GetItemDataNode(children.GetId(index))
        if node is not None and node.IsA(class_name) and node.GetName() == name:
            return node
    return None


def _live_pair(scene, first: tuple[str, str], second: tuple[str, str]):
    """Two live nodes made together (a volume and its isotherms, a table and its chart), reused
    only both at once."""
    pair = (_live_node(scene, *first), _live_node(scene, *second))
    return pair if None not in pair else (None, None)


def _same_type(image, voxels: np.ndarray) -> bool:
    scalars = image.GetPointData().GetScalars()
    if scalars is None or image.GetNumberOfScalarComponents() != 1:
        return False

    return numpy_support.get_vtk_array_type(voxels.dtype) == scalars.GetDataType()


# ---------------------------------------------------------------------------------------------
# Where the messages come from


class ClientSource:
    """Our own OpenIGTLink client/server (:class:`~.link.LiveLink`, journaled by its listener)."""

    kind = "client"

    def __init__(self, link: LiveLink):
        self.link = link

    def start(self) -> None:
        self.link.start()

    def stop(self) -> None:
        self.link.stop()

    def send_scan_plane(self, plane_to_ras: np.ndarray) -> int:
        return self.link.send_scan_plane(plane_to_ras) if "scanner" in self.link.links else 0

    def send_scanner_command(self, command: str) -> str | None:
        return self.link.send_scanner_command(command) if "scanner" in self.link.links else None

    def poll(self, max_items: int = 1000) -> list[Polled]:
        out: list[Polled] = []
        for peer, item, events in self.link.poll_received(max_items):
            if isinstance(item, Received):
                out.append((peer, item.message, item.arrival_time_s, events))
            else:  # a link event or a command not acknowledged in time
                out.append((peer, None, time.time(), [item]))
        return out


class ConnectorSource:
    """Slicer's OpenIGTLinkIF connector (``vtkMRMLIGTLConnectorNode``): the nodes it creates or
    updates (volume, linear transform, text, IGTL status) become our messages again, journaled as
    received (time stamp: the arrival here; the connector keeps no sender time stamp)."""

    kind = "connector"

    def __init__(self, connector_node, journal=None, role: str = "scanner"):
        """``role``: the link this connector carries ("scanner": the MR bridge; "console")."""
        if role not in ("scanner", "console"):
            raise InputError("role", f"must be 'scanner' or 'console', got {role!r}")
        self.role = role
        self.connector = connector_node
        self.journal = journal
        self._plane_node = None
        self._command_ids = 0
        self._pending: list[tuple[Message, float]] = []
        self._observed: dict[str, tuple[object, int]] = {}
        self._tags: list[int] = []
        self._faults: list[LinkEvent] = []
        self._connected = False

    def start(self) -> None:
        connector = self.connector
        for event_name in ("NewDeviceEvent", "DeviceModifiedEvent"):
            event = getattr(connector, event_name, None)
            if event is not None:
                self._tags.append(connector.AddObserver(event, self._on_connector_event))
        for index in range(connector.GetNumberOfIncomingMRMLNodes()):
            self._observe(connector.GetIncomingMRMLNode(index))
        if hasattr(connector, "Start") and connector.GetState() == getattr(connector, "StateOff", 0):
            connector.Start()

    def stop(self) -> None:
        if hasattr(self.connector, "Stop"):  # free the port for the next live session
            self.connector.Stop()
        for tag in self._tags:
            self.connector.RemoveObserver(tag)
        for node, tag in self._observed.values():
            node.RemoveObserver(tag)
        self._tags.clear()
        self._observed.clear()

    def _on_connector_event(self, caller, _event, call_data=None) -> None:
        for index in range(caller.GetNumberOfIncomingMRMLNodes()):
            self._observe(caller.GetIncomingMRMLNode(index))

    def _observe(self, node) -> None:
        if node is None or node.GetID() in self._observed:
            return
        # the content's own event where the node has one (display changes are no new message)
        event = next(
            (getattr(node, name) for name in CONTENT_EVENTS if hasattr(node, name)),
            getattr(node, "ModifiedEvent", 33),
        )
        tag = node.AddObserver(event, lambda caller, _e: self._on_node_modified(caller))
        self._observed[node.GetID()] = (node, tag)
        # Not read now: a node the connector has just created (NewDeviceEvent) is still empty (an
        # identity transform would move a probe to the origin), and one from before start() holds
        # stale content. The connector's next content event carries what the peer sent.

    def image_node_for(self, device_name: str):
        """The connector's own volume node of an image device (live mode shows it as it is)."""
        for node, _ in self._observed.values():
            if node.GetName() == device_name and node.IsA("vtkMRMLScalarVolumeNode"):
                return node
        return None

    def _on_node_modified(self, node) -> None:
        message = node_to_message(node)
        if message is None:
            return
        arrival = time.time()
        if self.journal is not None:  # journaled before it is used; what cannot be is not used
            try:
                self.journal.record_message(message, arrival, "in", peer=CONNECTOR_PEER, link=self.role)
            except Exception as error:  # a journal fault costs this message, not the session
                now = time.time()
                detail = f"{message.message_type} {message.device_name!r} dropped, not journaled: {error!r}"
                self._faults.append(LinkEvent("error", 0, CONNECTOR_PEER, detail[:400], now))
                return
        self._pending.append((message, arrival))

    def send_scan_plane(self, plane_to_ras: np.ndarray) -> int:
        """TRANSFORM ``PLANE_0`` through the connector (an outgoing transform node it pushes)."""
        scene = self.connector.GetScene()
        if self._plane_node is None:
            self._plane_node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", SCAN_PLANE_DEVICE)
            self.connector.RegisterOutgoingMRMLNode(self._plane_node)
        self._plane_node.SetMatrixTransformToParent(volumes.matrix_to_vtk(np.asarray(plane_to_ras, float)))
        if self.journal is not None:
            self.journal.record_message(scan_plane_message(plane_to_ras), direction="out", peer="connector")
        return 1

    def send_scanner_command(self, command: str) -> str | None:
        """STRING ``CMD_<id>`` through the connector (an outgoing text node, pushed once)."""
        self._command_ids += 1
        command_id = f"{int(time.time() * 1000) % 10**10}{self._command_ids:03d}"[-16:]
        message = scanner_command(command, command_id)
        node = self.connector.GetScene().AddNewNodeByClass("vtkMRMLTextNode", message.device_name)
        node.SetText(message.text)
        self.connector.RegisterOutgoingMRMLNode(node)
        if hasattr(self.connector, "PushNode"):
            self.connector.PushNode(node)
        if self.journal is not None:
            self.journal.record_message(message, direction="out", peer="connector")
        return command_id

    def connected(self) -> bool:
        """The connector's own state (a connector without one, e.g. a stand-in, counts as off)."""
        state = getattr(self.connector, "GetState", None)
        return state is not None and state() == getattr(self.connector, "StateConnected", 2)

    def poll(self, max_items: int = 1000) -> list[Polled]:
        """What the connector brought since the last poll (all from its ``role``'s peer), with a
        link event where its connection came up or went down."""
        out: list[Polled] = []
        connected = self.connected()
        if connected != self._connected:
            self._connected = connected
            kind = "connected" if connected else "disconnected"
            now = time.time()
            out.append((self.role, None, now, [LinkEvent(kind, 0, CONNECTOR_PEER, "", now)]))
        faults, self._faults = self._faults, []
        out += [(self.role, None, fault.time_s, [fault]) for fault in faults]
        taken, self._pending = self._pending[:max_items], self._pending[max_items:]
        out += [(self.role, message, arrival, None) for message, arrival in taken]
        return out


def node_to_message(node) -> Message | None:
    """The OpenIGTLink message an OpenIGTLinkIF node stands for (None for other nodes)."""
    name = node.GetName()
    if node.IsA("vtkMRMLLinearTransformNode"):
        matrix = vtkMatrix4x4()
        node.GetMatrixTransformToParent(matrix)
        return TransformMessage(volumes.vtk_to_matrix(matrix), device_name=name)
    if node.IsA("vtkMRMLScalarVolumeNode") and node.GetImageData() is not None:
        voxels = np.array(volumes.image_data_to_array(node.GetImageData()))
        ijk_to_ras = volumes.ijk_to_ras(node)
        centre = ijk_to_ras @ np.append((np.asarray(voxels.shape[:3]) - 1) / 2.0, 1.0)
        return ImageMessage(voxels, ijk_to_ras[:3, :3], centre[:3], device_name=name)
    if node.IsA("vtkMRMLTextNode"):
        return StringMessage(node.GetText() or "", device_name=name)
    if node.IsA("vtkMRMLIGTLStatusNode"):
        return StatusMessage(
            node.GetCode(),
            node.GetSubCode(),
            node.GetErrorName() or "",
            node.GetStatusString() or "",
            device_name=name,
        )
    return None


def connector_available() -> bool:
    """True inside a Slicer that has the OpenIGTLinkIF module (its connector node class)."""
    try:
        # Slicer itself: present only inside Slicer (or with slicer-core)
        import slicer
    except ImportError:
        return False
    return hasattr(slicer, "vtkMRMLIGTLConnectorNode")


def connector_honours(scanner) -> bool:
    """Whether the OpenIGTLinkIF connector can carry the scanner link as configured: its server
    (``SetTypeServer(port)``) listens on every interface and accepts any peer, so it is used to
    listen only when the endpoint says so (host 0.0.0.0 and peers ("*",)); connecting out to the
    bridge (a client endpoint) it does as asked."""
    if scanner is None or scanner.role == "client":
        return True
    return scanner.host in ("0.0.0.0", "", "::") and scanner.allowed_peers is None


def choose_sources(scene, journal, *, scanner=None, console=None, use_connector: bool | None = None) -> list:
    """The message sources for this Slicer, given :class:`~.link.Endpoint` s of the MR bridge
    (``scanner``) and the cryo console (``console``).

    With the OpenIGTLinkIF module, the MR bridge goes through its connector (IMAGE, STATUS, and our
    PLANE_0 / CMD_<id> out) where the connector can honour the endpoint (:func:`connector_honours`:
    it cannot listen on one address or keep to allowed peers), and the console through our client:
    a console sends SENSOR/NDARRAY temperatures, which the connector cannot carry. Otherwise both go
    through our own link. ``use_connector`` forces the choice (None: decide by what is installed
    and what the endpoint asks; True with an endpoint the connector cannot honour: InputError)."""

    if use_connector is None:
        use_connector = connector_available() and connector_honours(scanner)
    elif use_connector and scanner is not None and not connector_honours(scanner):
        raise InputError(
            "scanner host",
            f"the OpenIGTLinkIF connector listens on all interfaces and takes any peer: it cannot keep "
            f"to {scanner.host} and its allowed peers; use our own link (use_connector=False)",
        )
    if not use_connector or scanner is None:
        link = LiveLink(journal, scanner=scanner, console=console, coalesce=LIVE_COALESCED)
        return [ClientSource(link)]
    sources: list = [ConnectorSource(scanner_connector(scene, scanner), journal)]
    if console is not None:
        sources.append(
            ClientSource(LiveLink(journal, scanner=None, console=console, coalesce=LIVE_COALESCED))
        )
    return sources


def scanner_connector(scene, scanner):
    """The OpenIGTLinkIF connector node that carries the MR bridge's link (an earlier live
    session's, or a new one), set up for ``scanner`` (an :class:`~.link.Endpoint`)."""
    connector = scene.GetFirstNodeByName(CONNECTOR_NODE_NAME)
    if connector is None or not connector.IsA("vtkMRMLIGTLConnectorNode"):
        connector = scene.AddNewNodeByClass("vtkMRMLIGTLConnectorNode", CONNECTOR_NODE_NAME)
    if scanner.role == "server":
        connector.SetTypeServer(scanner.port)
    else:
        connector.SetTypeClient(scanner.host, scanner.port)
    if hasattr(connector, "SetOutgoingMessageHeaderVersionMaximum"):
        connector.SetOutgoingMessageHeaderVersionMaximum(1)  # legacy peers choke on the v2 probe
    return connector


class LiveSceneDriver:
    """Live mode in a scene: poll the sources, feed the session, map onto nodes. Call
    :meth:`step` from a timer (Slicer: ``qt.QTimer``, every 20 ms: a frame waits for the next
    tick). ``journal``: closed by :meth:`stop` (the sources journal what they receive)."""

    def __init__(self, live_scene: LiveScene, sources: list, silence_s: float | None = 1.0, journal=None):
        self.live_scene = live_scene
        self.session = live_scene.session
        self.sources = sources
        self.silence_s = silence_s
        self.journal = journal
        # (peer, event) pairs of the last step: what the messages carried, link events, commands
        # not acknowledged in time (for a panel's status lights and messages)
        self.events: list[tuple[str, object]] = []

    def start(self) -> None:
        for source in self.sources:
            source.start()

    def stop(self) -> None:
        for source in self.sources:
            source.stop()
        while self.step(follow_wall_clock=False):  # everything received before the stop
            pass
        self.session.finish()
        self.live_scene.refresh_overlay()
        self.live_scene.refresh_sensor_table(force=True)
        if self.journal is not None:
            self.journal.record_note("stop", {"time_s": self.session.clock_s})
            self.journal.close()

    def send_scan_plane(self, plane_to_ras: np.ndarray) -> int:
        """Our scan plane (4×4, RAS) to the MR bridge as TRANSFORM ``PLANE_0``."""
        return sum(source.send_scan_plane(plane_to_ras) for source in self.sources)

    def send_scan_plane_from_slice(self, slice_node) -> int:
        """The plane of a slice view (its SliceToRAS) as the scan plane."""
        return self.send_scan_plane(volumes.vtk_to_matrix(slice_node.GetSliceToRAS()))

    def send_scanner_command(self, command: str) -> str | None:
        """START_UP / START_SEQUENCE / STOP_SEQUENCE as ``CMD_<id>`` (answered by ``ACK_<id>``)."""
        for source in self.sources:
            command_id = source.send_scanner_command(command)
            if command_id is not None:
                return command_id
        return None

    def step(self, follow_wall_clock: bool = True) -> int:
        """Feed what arrived into the session and the nodes, refresh the overlay and the sensor
        table if there is something newer; returns the messages fed (their events, link events
        and command timeouts are in :attr:`events` until the next step)."""
        fed = 0
        self.events = []
        for source in self.sources:
            adopt = getattr(source, "image_node_for", None)
            for peer, message, arrival, events in source.poll():
                if message is None:
                    self.events += [(peer, event) for event in events]
                    continue
                events = self.session.feed(message, arrival, events, link=peer)
                self.events += [(peer, event) for event in events]
                node = adopt(message.device_name) if adopt and isinstance(message, ImageMessage) else None
                if node is not None:  # the connector's volume node is already updated in place
                    self.live_scene.image_node = node
                    events = [e for e in events if not isinstance(e, ScannerImage)]
                try:
                    self.live_scene.apply(events)
                except Exception as error:  # a frame or pose the scene cannot show costs that message
                    reason = f"not shown: {error!r}"[:300]
                    self.events.append(
                        (peer, Unrecognised(message.message_type, message.device_name, reason, arrival))
                    )
                fed += 1
        if fed == 0 and follow_wall_clock and self.silence_s:
            self.session.follow_wall_clock(self.silence_s)
        self.live_scene.refresh()
        return fed


def start_live_scene(
    scene,
    case,
    journal_path,
    *,
    scanner=None,
    console=None,
    use_connector: bool | None = None,
    level_table=None,
    update_interval_s: float = 1.0,
    silence_s: float | None = 1.0,
) -> LiveSceneDriver:
    """Live mode in ``scene``: the journal and session of :func:`~.runner.open_session` (a new
    procedure, or the journal's resumed), the scene nodes, the sources of :func:`choose_sources`,
    started."""

    journal, session, _ = open_session(case, journal_path, update_interval_s=update_interval_s)
    live = LiveScene(scene, session, level_table)
    sources = choose_sources(scene, journal, scanner=scanner, console=console, use_connector=use_connector)
    monitor = LiveSceneDriver(live, sources, silence_s, journal)
    try:
        monitor.start()
    except Exception:
        journal.close()
        raise
    return monitor
