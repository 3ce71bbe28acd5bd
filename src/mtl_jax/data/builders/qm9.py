"""QM9: 130,831 small organic molecules with the 11 regression targets of the MTL benchmark.

Source: the PyPI package ``qm9pack`` 1.0.3, which ships ``qm9pack/data/qm9_part{1,2,3}.csv``:
the QM9 data of Ramakrishnan, Dral, Rupp & von Lilienfeld, "Quantum chemistry structures and
properties of 134 kilo molecules", Scientific Data 1, 140022 (2014), without the 3,054
molecules that failed the paper's consistency check, i.e. 130,831 molecules (ids 1..133,885
with gaps). Geometries are B3LYP/6-31G(2df,p), in Ångström.

Targets (the 11 tasks of the multi-task QM9 benchmark of Navon et al., "Multi-Task Learning
as a Bargaining Game" (Nash-MTL, ICML 2022) and Liu et al., "FAMO" (NeurIPS 2023), in the
units those papers report, i.e. PyTorch Geometric's QM9 units), in this order:

====  ==========  =========================================================  ===========
 #    name        source column (conversion)                                 unit
====  ==========  =========================================================  ===========
 0    mu          Dipole_debye                                               D
 1    alpha       Polarizability_bohr3                                       a0^3
 2    homo        HOMO_au × 27.211386246                                     eV
 3    lumo        LUMO_au × 27.211386246                                     eV
 4    r2          R2_bohr2                                                   a0^2
 5    zpve        ZPVE_au × 27.211386246                                     eV
 6    u0          (InternalEnergy_0K_au − Σ atom refs U0) × 27.211386246     eV
 7    u298        (InternalEnergy_298K_au − Σ atom refs U) × 27.211386246    eV
 8    h298        (Enthalphy_298K_au − Σ atom refs H) × 27.211386246         eV
 9    g298        (GibbsFreeEnergy_298K_au − Σ atom refs G) × 27.211386246   eV
 10   cv          Heatcapacity_Cv_cal_mol_K                                  cal/(mol K)
====  ==========  =========================================================  ===========

The four energies are atomization energies: the molecule's energy minus the free-atom
reference energies of H, C, N, O, F from the QM9 paper's ``atomref`` table (below).

Split: a permutation of the molecules (in source order) seeded with the config's ``seed``
(default 0): the first 10,000 are test, the next 10,000 validation, the remaining 110,831
train. Normalisation: the per-target mean and standard deviation over the train split are
saved in the dataset metadata (``target_mean``, ``target_std``) and applied in the stored
``targets_normalized``; ``targets`` keeps the physical units above.

Per molecule: ``atomic_numbers`` (int32, length ``num_atoms``), ``positions`` (float32,
``num_atoms`` × 3, Å), ``num_atoms``, ``index`` (the QM9 id), ``targets``,
``targets_normalized``.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

from mtl_jax.data.builders import common
from mtl_jax.errors import DataError

DATASET = "qm9"
INSTALL = "pip install --force-reinstall qm9pack"
NUM_MOLECULES = 130_831
HARTREE_TO_EV = 27.211386246
ATOMIC_NUMBERS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
# Free-atom reference energies (Hartree) of the QM9 paper's atomref table: U0, U, H, G.
ATOM_REFERENCE = {
    "H": (-0.500273, -0.498857, -0.497912, -0.510927),
    "C": (-37.846772, -37.845355, -37.844411, -37.861317),
    "N": (-54.583861, -54.582445, -54.581501, -54.598897),
    "O": (-75.064579, -75.063163, -75.062219, -75.079532),
    "F": (-99.718730, -99.717314, -99.716370, -99.733544),
}
TARGETS = ("mu", "alpha", "homo", "lumo", "r2", "zpve", "u0", "u298", "h298", "g298", "cv")
UNITS = ("D", "a0^3", "eV", "eV", "a0^2", "eV", "eV", "eV", "eV", "eV", "cal/(mol K)")
ENERGY_COLUMNS = (
    "InternalEnergy_0K_au",
    "InternalEnergy_298K_au",
    "Enthalphy_298K_au",
    "GibbsFreeEnergy_298K_au",
)
COLUMNS = (
    "Index", "N_atoms", "Elements", "XYZ_Ang", "Dipole_debye", "Polarizability_bohr3", "HOMO_au",
    "LUMO_au", "R2_bohr2", "ZPVE_au", *ENERGY_COLUMNS, "Heatcapacity_Cv_cal_mol_K",
)  # fmt: skip
PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")


def source_files() -> list[Path]:
    """The three CSV parts shipped in ``qm9pack``, in id order."""
    root = common.package_dir(DATASET, "qm9pack", INSTALL) / "data"
    return [common.require_file(DATASET, root / part, INSTALL) for part in PARTS]


def parse_elements(text: str) -> list[str]:
    """``"['C','H']"`` -> ``["C", "H"]``."""
    return [item.strip().strip("'\"") for item in text.strip("[]").split(",") if item.strip()]


def parse_positions(text: str) -> np.ndarray:
    """``"[[x,y,z],...]"`` -> float32 (n, 3)."""
    values = np.array(text.replace("[", " ").replace("]", " ").split(","), np.float64)
    return values.reshape(-1, 3).astype(np.float32)


def targets_of(row: Mapping[str, str], elements: Sequence[str]) -> np.ndarray:
    """The 11 benchmark targets (float64, units in the module docstring) of one CSV row."""
    references = np.sum([ATOM_REFERENCE[e] for e in elements], axis=0)
    energies = np.array([float(row[c]) for c in ENERGY_COLUMNS]) - references
    return np.array(
        [
            float(row["Dipole_debye"]),
            float(row["Polarizability_bohr3"]),
            float(row["HOMO_au"]) * HARTREE_TO_EV,
            float(row["LUMO_au"]) * HARTREE_TO_EV,
            float(row["R2_bohr2"]),
            float(row["ZPVE_au"]) * HARTREE_TO_EV,
            *(energies * HARTREE_TO_EV),
            float(row["Heatcapacity_Cv_cal_mol_K"]),
        ]
    )


def molecule(path: Path, row: Mapping[str, str | None]) -> common.Example:
    """One molecule (without normalised targets) from a CSV row; bad rows raise DataError."""
    if any(row.get(column) in (None, "") for column in COLUMNS):
        raise common.source_error(DATASET, path, f"incomplete row for molecule {row.get('Index')}", INSTALL)
    elements = parse_elements(row["Elements"])
    unknown = sorted(set(elements) - set(ATOMIC_NUMBERS))
    if unknown:
        raise common.source_error(DATASET, path, f"elements out of range {unknown}", INSTALL)
    try:
        positions = parse_positions(row["XYZ_Ang"])
        targets = targets_of(row, elements)
        num_atoms = int(row["N_atoms"])
        index = int(row["Index"])
    except ValueError as error:
        raise common.source_error(DATASET, path, f"unparsable molecule {row.get('Index')}: {error}", INSTALL) from error
    if not (num_atoms == len(elements) == len(positions)) or not np.isfinite(targets).all():
        raise common.source_error(DATASET, path, f"inconsistent molecule {index}", INSTALL)
    return {
        "index": index,
        "num_atoms": num_atoms,
        "atomic_numbers": np.array([ATOMIC_NUMBERS[e] for e in elements], np.int32),
        "positions": positions,
        "targets": targets,
    }


def _rows(path: Path) -> Iterator[dict[str, str | None]]:
    try:
        with path.open(encoding="utf-8", newline="") as file:
            reader = csv.DictReader(file)
            missing = set(COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise common.source_error(DATASET, path, f"missing columns {sorted(missing)}", INSTALL)
            for row in reader:
                yield row
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise common.source_error(DATASET, path, str(error), INSTALL) from error


def read_molecules(paths: Sequence[Path], limit: int | None = None) -> list[common.Example]:
    """The first ``limit`` molecules (all 130,831, count checked, when ``limit`` is None)."""
    rows: Iterable[tuple[Path, dict[str, str | None]]] = (
        (path, row) for path in paths for row in _rows(path)
    )
    molecules = [molecule(path, row) for path, row in itertools.islice(rows, limit)]
    if limit is None:
        common.check_count(DATASET, paths[-1], "molecules in all parts", len(molecules), NUM_MOLECULES, INSTALL)
    return molecules


def normalisation(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per target over the rows of ``targets`` (std of a constant target is 1)."""
    mean = targets.mean(axis=0)
    std = targets.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def with_normalised(example: common.Example, mean: np.ndarray, std: np.ndarray) -> common.Example:
    """The stored example: float32 targets and their normalised values."""
    targets = example["targets"]
    return {
        **example,
        "targets": targets.astype(np.float32),
        "targets_normalized": ((targets - mean) / std).astype(np.float32),
    }


@dataclasses.dataclass(eq=False)
class Qm9Config(common.SeededConfig):
    """Split seed, optional cap on the molecules read, and the held-out split sizes."""

    num_test: int = 10_000
    num_validation: int = 10_000


class Qm9(common.PackageDataBuilder, skip_registration=True):
    """QM9 molecules (atoms, positions) with the 11 MTL benchmark targets."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "QM9 from qm9pack 1.0.3, Nash-MTL/FAMO targets and units."}
    BUILDER_CONFIGS = [Qm9Config(name="default")]
    DESCRIPTION = __doc__
    HOMEPAGE = "https://pypi.org/project/qm9pack/"
    CITATION = (
        "Ramakrishnan, R., Dral, P. O., Rupp, M., von Lilienfeld, O. A. Quantum chemistry"
        " structures and properties of 134 kilo molecules. Scientific Data 1, 140022 (2014)."
    )

    def _features(self) -> tfds.features.FeaturesDict:
        return tfds.features.FeaturesDict(
            {
                "index": tfds.features.Scalar(dtype=np.int32),
                "num_atoms": tfds.features.Scalar(dtype=np.int32),
                "atomic_numbers": tfds.features.Tensor(shape=(None,), dtype=np.int32),
                "positions": tfds.features.Tensor(shape=(None, 3), dtype=np.float32),
                "targets": tfds.features.Tensor(shape=(len(TARGETS),), dtype=np.float32),
                "targets_normalized": tfds.features.Tensor(shape=(len(TARGETS),), dtype=np.float32),
            }
        )

    def _make_splits(self) -> dict[str, Sequence[common.Example]]:
        config = self.builder_config
        molecules = read_molecules(source_files(), config.limit)
        index = common.seeded_split(DATASET, len(molecules), config.seed, config.num_test, config.num_validation)
        mean, std = normalisation(np.stack([molecules[i]["targets"] for i in index["train"]]))
        self.info.metadata.update(
            target_names=list(TARGETS),
            target_units=list(UNITS),
            target_mean=mean.tolist(),
            target_std=std.tolist(),
        )
        return {split: [with_normalised(molecules[i], mean, std) for i in rows] for split, rows in index.items()}


def load(split: str, data_dir: str | None = None, **config_fields: object) -> Sequence[common.Example]:
    """Data source of a QM9 split (``train``, ``validation``, ``test``)."""
    return common.load_split(Qm9, split, data_dir, **config_fields)


__all__ = ["DataError", "Qm9", "Qm9Config", "load", "read_molecules", "source_files"]
