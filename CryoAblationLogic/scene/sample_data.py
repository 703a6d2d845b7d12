"""The synthetic phantom as Slicer sample data: files made locally, never downloaded.

The recipe ``Resources/SampleData/CryoAblationPhantom.json`` names the SampleData category, the
sample, the node and file names and the grid spacing. :func:`write_sample_files` makes the image
volume (``.nrrd``) and the segmentation (``.seg.nrrd``, one named segment per phantom label, in the
format Slicer's segmentation reader expects) from :func:`CryoAblationLogic.io.phantom.make_phantom`.
Used by the module's SampleData entry, its self-test and the pytest scenarios.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from CryoAblationLogic.core.grid import Grid
from CryoAblationLogic.core.resources import resource_path
from CryoAblationLogic.io.phantom import LABELS, make_phantom
from CryoAblationLogic.io.volumes import write_nrrd
from CryoAblationLogic.scene.inputs import MATERIAL_TAG, ROLE_TAG

RECIPE = ("SampleData", "CryoAblationPhantom.json")

# Display colours of the phantom's segments (RGB 0–1), by segment name.
SEGMENT_COLORS: dict[str, tuple[float, float, float]] = {
    "Fat": (0.90, 0.85, 0.55),
    "Kidney": (0.72, 0.40, 0.35),
    "Tumor": (0.95, 0.20, 0.20),
    "Vessel": (0.25, 0.35, 0.90),
    "Bowel": (0.95, 0.65, 0.20),
    "Psoas": (0.60, 0.35, 0.55),
}


@dataclass(frozen=True)
class SampleRecipe:
    category: str
    sample_name: str
    description: str
    spacing_mm: float
    volume_node_name: str
    segmentation_node_name: str
    volume_file: str
    segmentation_file: str


@dataclass(frozen=True)
class SampleFiles:
    volume: Path
    segmentation: Path


def load_recipe(path: str | Path | None = None) -> SampleRecipe:
    path = Path(path) if path is not None else resource_path(*RECIPE)
    data = json.loads(path.read_text(encoding="utf-8"))
    fields = SampleRecipe.__dataclass_fields__
    missing = sorted(set(fields) - set(data))
    if missing:
        raise ValueError(f"{path}: sample-data recipe lacks {', '.join(missing)}")
    spacing = float(data["spacing_mm"])
    if not spacing > 0:
        raise ValueError(f"{path}: spacing_mm must be positive, got {data['spacing_mm']}")
    if not data["segmentation_file"].endswith(".seg.nrrd"):
        raise ValueError(f"{path}: segmentation_file must end in .seg.nrrd (Slicer's segmentation format)")
    return SampleRecipe(**{**{name: data[name] for name in fields}, "spacing_mm": spacing})


def sample_file_paths(directory: str | Path, recipe: SampleRecipe | None = None) -> SampleFiles:
    recipe = recipe or load_recipe()
    directory = Path(directory)
    return SampleFiles(directory / recipe.volume_file, directory / recipe.segmentation_file)


def write_sample_files(
    directory: str | Path, recipe: SampleRecipe | None = None, overwrite: bool = False
) -> SampleFiles:
    """Make the phantom's volume and segmentation files in ``directory`` (kept if already there)."""
    recipe = recipe or load_recipe()
    files = sample_file_paths(directory, recipe)
    if not overwrite and files.volume.is_file() and files.segmentation.is_file():
        return files
    phantom = make_phantom(recipe.spacing_mm)
    write_nrrd(files.volume, phantom.image, phantom.grid)

    segments = {label: name for label, (name, _material, _role) in LABELS.items()}
    tags = {name: {ROLE_TAG: role, MATERIAL_TAG: material} for name, material, role in LABELS.values()}
    write_segmentation_nrrd(files.segmentation, phantom.labels, phantom.grid, segments, tags=tags)
    return files


def write_segmentation_nrrd(
    path: str | Path,
    labels: np.ndarray,
    grid: Grid,
    segments: dict[int, str],
    *,
    colors: dict[str, tuple[float, float, float]] | None = None,
    tags: dict[str, dict[str, str]] | None = None,
) -> Path:
    """Write a label volume as a Slicer ``.seg.nrrd``: one segment per label value, all in layer 0.

    ``tags`` (segment name → {tag: value}) are stored as segment tags, e.g. the role and material
    that the MRML adapters read (``CryoAblation.Role``, ``CryoAblation.Material``).
    """

    labels = np.asarray(labels)
    if labels.shape != tuple(grid.size):
        raise ValueError(f"label volume shape {labels.shape} does not match grid size {grid.size}")
    present = {int(v) for v in np.unique(labels)} - {0}
    unnamed = sorted(present - set(segments))
    if unnamed:
        raise ValueError(f"label values {unnamed} have no segment name")
    colors = colors or SEGMENT_COLORS
    path = Path(path)
    write_nrrd(path, labels.astype(np.uint8 if labels.max() < 256 else np.uint16), grid)
    image = sitk.ReadImage(str(path))
    # Key/value pairs of Slicer's segmentation storage node (vtkMRMLSegmentationStorageNode).
    image.SetMetaData("Segmentation_MasterRepresentation", "Binary labelmap")
    image.SetMetaData("Segmentation_ContainedRepresentationNames", "Binary labelmap|")
    image.SetMetaData("Segmentation_ReferenceImageExtentOffset", "0 0 0")
    for index, (label, name) in enumerate(sorted(segments.items())):
        mask = labels == label
        if mask.any():
            nonzero = np.nonzero(mask)
            extent = " ".join(f"{int(axis.min())} {int(axis.max())}" for axis in nonzero)
        else:  # an empty segment: Slicer writes an inverted extent
            extent = "0 -1 0 -1 0 -1"
        red, green, blue = colors.get(name, (0.5, 0.5, 0.5))
        prefix = f"Segment{index}_"
        image.SetMetaData(prefix + "ID", name)
        image.SetMetaData(prefix + "Name", name)
        image.SetMetaData(prefix + "NameAutoGenerated", "0")
        image.SetMetaData(prefix + "Color", f"{red} {green} {blue}")
        image.SetMetaData(prefix + "ColorAutoGenerated", "0")
        image.SetMetaData(prefix + "LabelValue", str(label))
        image.SetMetaData(prefix + "Layer", "0")
        image.SetMetaData(prefix + "Extent", extent)
        segment_tags = (tags or {}).get(name, {})
        for tag, value in segment_tags.items():
            if any(c in f"{tag}{value}" for c in "|:"):
                raise ValueError(f"segment {name}: tag {tag!r}={value!r} may not contain '|' or ':'")
        image.SetMetaData(
            prefix + "Tags", "".join(f"{tag}:{value}|" for tag, value in segment_tags.items()) or "|"
        )
    sitk.WriteImage(image, str(path), True)
    return path
