"""Readers for real datasets: Human3.6M (h36m-fetch layout) and MPI-INF-3DHP (training and test sets).

Directory layouts are documented in ``docs/datasets.md`` and in each module's docstring.
"""

from __future__ import annotations

from .h36m import EVAL_EVERY, H36M, TEST_SUBJECTS, TRAIN_SUBJECTS, H36MSample, square_bbox
from .mpi_inf_3dhp import MPIINF3DHPSample, MPIINF3DHPSequence, MPIINF3DHPTest, MPIINF3DHPTrain, pck_auc

__all__ = [
    "EVAL_EVERY",
    "H36M",
    "H36MSample",
    "MPIINF3DHPSample",
    "MPIINF3DHPSequence",
    "MPIINF3DHPTest",
    "MPIINF3DHPTrain",
    "TEST_SUBJECTS",
    "TRAIN_SUBJECTS",
    "pck_auc",
    "square_bbox",
]
