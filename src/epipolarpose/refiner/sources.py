"""Where a refiner's error model (and its virtual cameras) come from: fitted, loaded or Gaussian.

One choice for ``refine train`` and the refiner benchmarks: fit the model to a network's
validation predictions and their ground truth (and, optionally, match the virtual cameras to the
views of that ground truth), load a saved one, or use plain Gaussian noise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..formats import read_camera_poses
from .cameras import VirtualCameras
from .error_model import ErrorModel, fit_error_model

__all__ = ["DEFAULT_SIGMA_MM", "ErrorFitOptions", "ErrorSource", "choose_error_source", "fitted_error_source"]

#: Gaussian noise used when no error model is given (mm per coordinate).
DEFAULT_SIGMA_MM = 40.0


@dataclass(frozen=True)
class ErrorFitOptions:
    """How :func:`fitted_error_source` fits (see :func:`~epipolarpose.refiner.fit_error_model`).

    Attributes:
        align_scale: rescale each prediction to its ground truth first.
        pose_dependent: fit the linear, pose-dependent error term.
        heavy_tails: keep the per-pose noise scales.
        match_cameras: draw the virtual cameras like the ones that saw the ground truth
            (:meth:`~epipolarpose.refiner.VirtualCameras.matching`) instead of the default ranges.
    """

    align_scale: bool = False
    pose_dependent: bool = True
    heavy_tails: bool = True
    match_cameras: bool = True


@dataclass
class ErrorSource:
    """An error model, the virtual cameras to train with, and how they were chosen.

    Attributes:
        model: the error model.
        cameras: the virtual cameras.
        kind: ``"fitted"``, ``"loaded"`` or ``"gaussian"``.
        cameras_matched: the cameras were matched to the ground truth.
        notes: messages for the user (e.g. that a default was used).
    """

    model: ErrorModel
    cameras: VirtualCameras = field(default_factory=VirtualCameras)
    kind: str = "fitted"
    cameras_matched: bool = False
    notes: list[str] = field(default_factory=list)


def fitted_error_source(
    pred: np.ndarray,
    gt: np.ndarray,
    options: ErrorFitOptions = ErrorFitOptions(),
    view_poses: np.ndarray | None = None,
) -> ErrorSource:
    """Fit an error model to predictions and their ground truth, (N, J, 3) each, camera frame,
    same units. With ``options.match_cameras`` the cameras match the views of ``view_poses``
    (default ``gt``; (M, 17, 3) camera frame, absolute poses for the distance range to be read)."""
    model = fit_error_model(
        pred,
        gt,
        align_scale=options.align_scale,
        pose_dependent=options.pose_dependent,
        heavy_tails=options.heavy_tails,
    )
    if options.match_cameras:
        return ErrorSource(
            model,
            VirtualCameras.matching(gt if view_poses is None else view_poses),
            "fitted",
            cameras_matched=True,
        )
    return ErrorSource(model, VirtualCameras(), "fitted")


def choose_error_source(
    *,
    error_model: str | os.PathLike | None = None,
    fit_errors: tuple[str | os.PathLike, str | os.PathLike] | None = None,
    gaussian: float | None = None,
    options: ErrorFitOptions = ErrorFitOptions(),
) -> ErrorSource:
    """At most one of: a saved error model file, a (PRED.npz, GT.npz) pair to fit to
    (:func:`~epipolarpose.formats.read_camera_poses` reads both), a Gaussian sigma (mm). None of
    them: Gaussian noise of :data:`DEFAULT_SIGMA_MM` (with a note saying so).

    Raises :class:`InputError` when several are given or the two fitting files differ in shape.
    """
    fit_pair = tuple(p for p in (fit_errors or ()) if p is not None)
    given = [
        n
        for n, v in (("--error-model", error_model), ("--fit-errors", fit_pair), ("--gaussian", gaussian))
        if v
    ]
    if len(given) > 1:
        raise InputError(f"choose one error source, got {' and '.join(given)}")
    if fit_pair:
        pred, _ = read_camera_poses(fit_pair[0])
        gt, _ = read_camera_poses(fit_pair[1])
        if pred.shape != gt.shape:
            raise InputError(
                f"{fit_pair[0]} poses3d {pred.shape} and {fit_pair[1]} poses3d {gt.shape} differ in shape"
            )
        return fitted_error_source(pred, gt, options)
    if error_model is not None:
        return ErrorSource(ErrorModel.load(error_model), kind="loaded")
    sigma = DEFAULT_SIGMA_MM if gaussian is None else gaussian
    notes = []
    if gaussian is None:
        notes.append(
            f"no error model given: Gaussian noise of {sigma:g} mm (use --fit-errors for a fitted one)"
        )
    return ErrorSource(ErrorModel.gaussian(sigma), kind="gaussian", notes=notes)
