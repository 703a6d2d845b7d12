"""Scanner bridge and cryo console conventions mapped to typed events."""

from __future__ import annotations

import numpy as np
import pytest

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl import (
    ImageMessage,
    NdArrayMessage,
    SensorMessage,
    StatusMessage,
    StringMessage,
    TransformMessage,
    decode,
    encode,
)
from CryoAblationLogic.igtl.units import KELVIN, encode_unit
from CryoAblationLogic.live.console import (
    CommandAck,
    CommandTracker,
    ConsoleFault,
    ProbePose,
    ProbeStateChange,
    ProbeTemperatures,
    ScannerImage,
    ScannerStatus,
    Unrecognised,
    interpret,
    scan_plane_message,
    scanner_command,
)


def test_scanner_image_in_lps_is_given_in_ras():
    voxels = np.zeros((4, 3, 2), np.int16)
    image = ImageMessage.from_volume(voxels, (10.0, 20.0, 30.0), (1.0, 1.0, 3.0), coordinate_system="LPS")
    image.device_name = "MR Image"
    (event,) = interpret(decode(encode(image)), 5.0)
    assert isinstance(event, ScannerImage) and event.arrival_time_s == 5.0
    np.testing.assert_allclose(event.ijk_to_ras @ [0, 0, 0, 1], [-10.0, -20.0, 30.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(event.ijk_to_ras[:3, :3], np.diag([-1.0, -1.0, 3.0]), atol=1e-6)


def test_probe_poses_states_and_faults():
    matrix = np.eye(4)
    matrix[:3, 3] = (1, 2, 3)
    (pose,) = interpret(TransformMessage(matrix, device_name="Probe2ToScanner"))
    assert isinstance(pose, ProbePose) and pose.probe == 2 and pose.matrix[2, 3] == 3
    (freeze,) = interpret(StatusMessage(1, 0, "", "FREEZE 1 80%", device_name="Cryo"))
    assert freeze == ProbeStateChange(1, "freeze", None, 80.0, "STATUS", 0.0)
    (thaw,) = interpret(StringMessage("THAW 2 ACTIVE", device_name="CryoState"))
    assert (thaw.probe, thaw.action, thaw.mode, thaw.source) == (2, "thaw", "active", "STRING")
    (off,) = interpret(StringMessage("idle probe 3", device_name="CryoState"))
    assert (off.probe, off.action) == (3, "off")
    (fault,) = interpret(StatusMessage(18, 0, "HW", "Probe 1 gas supply lost", device_name="Cryo"))
    assert isinstance(fault, ConsoleFault) and fault.code == 18
    (status,) = interpret(StatusMessage(1, 0, "", "Scanning", device_name="MR"))
    assert status == ScannerStatus(1, "Scanning", True, 0.0)
    with pytest.raises(InputError, match="THAW only"):
        interpret(StringMessage("FREEZE 1 ACTIVE", device_name="CryoState"))
    with pytest.raises(InputError, match="flow"):
        interpret(StringMessage("FREEZE 1 150%", device_name="CryoState"))
    assert isinstance(interpret(StringMessage("BOIL 1", device_name="CryoState"))[0], Unrecognised)
    assert isinstance(interpret(TransformMessage(device_name="Needle"))[0], Unrecognised)


def test_temperatures_in_all_three_forms():
    (nd,) = interpret(NdArrayMessage(np.array([-40.0, -20.5]), device_name="ProbeTemps"))
    assert nd.temperatures_c == {1: -40.0, 2: -20.5}
    (sensor,) = interpret(SensorMessage([233.15], unit=KELVIN, device_name="Probe3Temp"))
    assert isinstance(sensor, ProbeTemperatures) and sensor.temperatures_c[3] == pytest.approx(-40.0)
    with pytest.raises(InputError, match="kelvin"):
        interpret(SensorMessage([1.0], unit=encode_unit([("meter", 1)]), device_name="Probe3Temp"))
    (json_text,) = interpret(StringMessage('{"1": -35.0, "2": 12}', device_name="ProbeTemps"))
    assert json_text.temperatures_c == {1: -35.0, 2: 12.0}
    (csv_text,) = interpret(StringMessage("-35.0, -10", device_name="ProbeTemps"))
    assert csv_text.temperatures_c == {1: -35.0, 2: -10.0}
    with pytest.raises(InputError, match="ProbeTemps"):
        interpret(StringMessage("cold", device_name="ProbeTemps"))


def test_commands_and_acknowledgements():
    plane = scan_plane_message(np.eye(4))
    assert plane.device_name == "PLANE_0" and plane.message_type == "TRANSFORM"
    command = scanner_command("START_SEQUENCE", "0001")
    assert (command.device_name, command.text) == ("CMD_0001", "START_SEQUENCE")
    with pytest.raises(InputError, match="command"):
        scanner_command("SELF_DESTRUCT", "2")
    tracker = CommandTracker()
    tracker.sent(command, 100.0)
    (ack,) = interpret(StringMessage("START_SEQUENCE", device_name="ACK_0001"), 100.2)
    assert isinstance(ack, CommandAck)
    assert tracker.overdue(103.0, 2.0) == ["0001"]
    assert not tracker.acknowledge(CommandAck("0001", "STOP_SEQUENCE", 100.3))  # wrong text
    assert tracker.acknowledge(ack) and tracker.pending == {}
