"""Install numba inside 3D Slicer on first use, after asking the user, without touching Slicer's numpy.

Slicer does not bundle numba, so the module installs it the first time the solver is needed (never
at start-up). numba caps the numpy versions it accepts, and an unsuitable numba could make pip
replace the numpy that Slicer itself is built against; the install therefore always runs with a
constraints file pinning ``numpy==<the installed version>`` (and Slicer's pydicom, which its DICOM
modules use: a requirement that needs a newer one, such as highdicom on Slicer 5.10, waits and the
user is told so). Slicer 5.11+ installs through
``slicer.packaging.pip_ensure``; older releases through ``slicer.util.pip_install``, which takes a
list of pip arguments.

Nothing here imports Qt or Slicer at module level: the Slicer modules and the question to the user
are passed in (or imported lazily), so the decision logic is tested without Slicer.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

REQUESTER = "CryoAblation"

# Requirement names whose module is named otherwise (none of ours today: see requirement_module).
MODULE_NAMES: dict[str, str] = {}

# Requirements that need a newer Slicer package than some Slicer releases ship:
# requirement name -> (Slicer's package, the least version it needs, what waits without it).
# highdicom 0.23 and later need pydicom 3.0.1; Slicer 5.10 ships pydicom 2.4.4 (5.12: pydicom 3).
NEEDS_NEWER = {"highdicom": ("pydicom", "3.0.1", "the DICOM export of `cryoablation demo`")}

# What the module loses without numba; shown when the user declines or the install fails.
WITHOUT_NUMBA = (
    "Until they are installed, CryoAblation does not run the ice-ball solver (Simulate), the live preview "
    "while a probe is dragged, or live monitoring mode. Loading data, placing probes, editing the "
    "protocol, connecting to the scanner and console, and exporting the case file still work. "
    "Press Simulate again to be asked again."
)


# Slicer's --testing runs (the self-test, ctest) never reach the network; 5.8–5.10 have no guard of
# their own (confirmOkCancelDisplay answers yes in testing mode, pip_install has no testing check).
def testing_message(missing: list[str]) -> str:
    names = " ".join(requirement_name(r) for r in missing)
    return (
        f"{_names(missing)} {'is' if len(missing) == 1 else 'are'} not installed, and Slicer runs in "
        "testing mode, where CryoAblation installs nothing (the self-test stays offline). Install "
        f"{'it' if len(missing) == 1 else 'them'} in this Slicer first: slicer.util.pip_install("
        f"{names!r}) in the Python console. " + WITHOUT_NUMBA
    )


@dataclass(frozen=True)
class NumbaStatus:
    """Outcome of :func:`ensure_numba`: whether numba can be used now, and what to tell the user."""

    available: bool
    message: str
    version: str | None = None


def read_requirements(path: str | Path) -> list[str]:
    """Requirement lines of a requirements.txt: comments, blank lines and pip options skipped."""
    requirements = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirements.append(line)
    if not requirements:
        raise ValueError(f"{path} lists no requirement")
    return requirements


def installed_numpy_version() -> str:
    """The numpy version in this Python (Slicer's own), as pip sees it."""
    try:
        return importlib.metadata.version("numpy")
    except importlib.metadata.PackageNotFoundError:
        import numpy

        return numpy.__version__


def installed_version(package: str) -> str | None:
    """The installed version of a package in this Python, or None."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def write_constraints(directory: str | Path, pins: dict[str, str | None]) -> Path:
    """Write a pip constraints file that pins Slicer's own packages (``{package: installed version}``;
    None: not installed, not pinned) to their versions; return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "CryoAblation-constraints.txt"
    path.write_text(
        "# Keep the packages that Slicer ships: what is installed must fit them, not the other way round.\n"
        + "".join(f"{package}=={version}\n" for package, version in pins.items() if version),
        encoding="utf-8",
    )
    return path


def held_back(requirements: list[str], version_of: Callable[[str], str | None] = installed_version) -> dict:
    """The requirement lines this Slicer cannot take without replacing a package it ships
    (``NEEDS_NEWER``), each with the sentence that says so."""
    out = {}
    for requirement in requirements:
        need = NEEDS_NEWER.get(requirement_name(requirement).lower())
        if need is None:
            continue
        package, least, waits = need
        have = version_of(package)
        if have is not None and _release(have) < _release(least):
            out[requirement] = (
                f"{requirement_name(requirement)} is not installed: it needs {package} {least} or later, "
                f"and this Slicer's {package} {have} is kept; {waits} waits for a Slicer that ships it."
            )
    return out


def configure_numba_cache(cache_root: str | Path) -> Path:
    """Point numba's on-disk cache at a user-writable folder (the extension folder may be read-only).

    An existing ``NUMBA_CACHE_DIR`` set by the user is kept if it is writable.
    """
    existing = os.environ.get("NUMBA_CACHE_DIR")
    if existing and _writable(Path(existing)):
        return Path(existing)
    cache_dir = Path(cache_root) / "CryoAblation" / "numba-cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    if not _writable(cache_dir):
        raise PermissionError(f"numba cache folder {cache_dir} is not writable")
    os.environ["NUMBA_CACHE_DIR"] = str(cache_dir)
    return cache_dir


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)


def _slicer_packaging() -> ModuleType | None:
    try:
        import slicer.packaging  # Slicer >= 5.11

        return slicer.packaging
    except ImportError:
        return None


def _slicer_util() -> ModuleType:
    import slicer.util

    return slicer.util


def requirement_name(requirement: str) -> str:
    """The package a requirement line names (``numba>=0.60`` → ``numba``)."""
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0]


def requirement_module(requirement: str) -> str:
    """The module a requirement line makes importable: its package name in lower case with "-" as
    "_" (true of every package CryoAblation needs; exceptions go in MODULE_NAMES)."""
    name = requirement_name(requirement).lower()
    return MODULE_NAMES.get(name, name.replace("-", "_"))


def _names(requirements: list[str]) -> str:
    return ", ".join(requirement_name(r) for r in requirements)


def missing_requirements(requirements: list[str], importer: Callable[[str], Any]) -> list[str]:
    """The requirement lines whose module cannot be imported here."""
    importlib.invalidate_caches()
    missing = []
    for requirement in requirements:
        try:
            importer(requirement_module(requirement))
        except ImportError:
            missing.append(requirement)
    return missing


def _numba_version(importer: Callable[[str], Any]) -> str | None:
    return getattr(importer("numba"), "__version__", None)


def ensure_numba(
    requirements_path: str | Path,
    ask: Callable[[str], bool],
    *,
    cache_root: str | Path | None = None,
    work_dir: str | Path | None = None,
    packaging: ModuleType | Any | None = None,
    util: ModuleType | Any | None = None,
    importer: Callable[[str], Any] = importlib.import_module,
    numpy_version: str | None = None,
    testing: bool = False,
    version_of: Callable[[str], str | None] = installed_version,
) -> NumbaStatus:
    """Make numba and the other packages of ``requirements.txt`` importable (numba for the solver,
    jsonschema for case files, matplotlib/jinja2/xhtml2pdf for the report, highdicom for DICOM,
    threadpoolctl for the live ice correction…), installing the missing ones after the user agrees;
    never raise for a decline.

    ``ask(message) -> bool`` puts the question to the user (``slicer.util.confirmOkCancelDisplay``
    in Slicer). ``packaging``/``util`` default to ``slicer.packaging`` (when this Slicer has it) and
    ``slicer.util``. ``cache_root`` (Slicer's cache path) receives numba's compiled-function cache;
    ``work_dir`` the constraints file. In testing mode (``slicer.app.testingEnabled()``) nothing is
    asked or installed: the self-test stays offline, so the packages must be installed before it runs.
    Only what is missing is installed, so numba already present is never reinstalled.
    """
    if cache_root is not None:
        configure_numba_cache(cache_root)
    requirements = read_requirements(requirements_path)
    kept_back = held_back(requirements, version_of)
    requirements = [r for r in requirements if r not in kept_back]
    notes = "".join(f" {sentence}" for sentence in kept_back.values())
    missing = missing_requirements(requirements, importer)
    if not missing:
        return NumbaStatus(True, "numba is available." + notes, _numba_version(importer))

    if testing:
        return NumbaStatus(False, testing_message(missing))
    version = numpy_version or installed_numpy_version()
    question = (
        f"CryoAblation needs the Python packages {_names(missing)} (numba for the ice-ball "
        "solver; the others for case files, the report, DICOM export and the live ice correction), "
        "which are not installed in Slicer yet.\n\n"
        f"Install them now? Slicer's numpy {version} and its pydicom are kept as they are. This "
        "needs an internet connection and may take a minute." + notes
    )
    if not ask(question):
        were = "was" if len(missing) == 1 else "were"
        return NumbaStatus(False, f"{_names(missing)} {were} not installed. {WITHOUT_NUMBA}")

    # Slicer's own modules are built against its numpy and use its pydicom: neither is replaced
    pins = {"numpy": version, "pydicom": version_of("pydicom")}
    constraints = write_constraints(work_dir or tempfile.mkdtemp(prefix="CryoAblation-"), pins)
    if packaging is None and util is None:
        packaging = _slicer_packaging()
    try:
        if packaging is not None and hasattr(packaging, "pip_ensure"):
            # The user has just agreed: no second dialog from Slicer.
            packaging.pip_ensure(
                missing, constraints=str(constraints), requester=REQUESTER, prompt_install=False
            )
        else:
            util = util if util is not None else _slicer_util()
            # slicer.util.pip_install (Slicer <= 5.10) passes a list through as pip arguments.
            util.pip_install([*missing, "-c", str(constraints)])
    except (subprocess.CalledProcessError, RuntimeError, OSError) as error:
        return NumbaStatus(False, f"Installing {_names(missing)} failed ({error}). {WITHOUT_NUMBA}")

    still_missing = missing_requirements(requirements, importer)
    if still_missing:
        return NumbaStatus(
            False,
            f"{_names(still_missing)} is still not importable after the install step (Slicer skips "
            "installs in testing mode; otherwise restart Slicer and try again). " + WITHOUT_NUMBA,
        )
    return NumbaStatus(True, f"{_names(missing)} installed." + notes, _numba_version(importer))
