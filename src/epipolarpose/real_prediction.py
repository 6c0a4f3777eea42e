"""Predicting on real footage: videos or image folders, one 3D pose per camera and frame
(``epipolarpose predict CKPT cam0.mp4 cam1.mp4 ... -o preds.npz``).

The person box of every frame comes from detections — a ``poses2d.npz`` (``epipolarpose
detect``), or a detector run here (MediaPipe by default) — and is the training crop (a square box
around the detected joints, 1.3 x their extent, :func:`~epipolarpose.synthetic.render.crop_affine`).
Frames where no person is found get NaN.

``preds.npz``:

| key | shape | meaning |
|---|---|---|
| ``poses3d_camera`` | (C, F, J, 3) | the pose in each camera's frame with the root at depth 1 (scale-free, ``units`` "arbitrary"); NaN where no person |
| ``poses2d`` | (C, F, J, 2) | the network's 2D joints in image pixels |
| ``person`` | (C, F) bool | a person box was found |
| ``crop_affine`` | (C, F, 2, 3) | image -> crop pixels of every view |
| ``frame_index`` | (F,) | video / image-folder frame of each prediction |
| ``K``, ``dist`` | (C, 3, 3), (C, 5) | the intrinsics used (detections', ``--intrinsics``, or the 60° default) |
| ``camera_names``, ``joint_names``, ``image_size``, ``units`` | | |

``epipolarpose evaluate preds.npz gt.npz`` scores them per camera against a ground truth with a
rig (N-MPJPE, P-MPJPE and PSS are meaningful; MPJPE needs metric units).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from .camera import Rig
from .errors import InputError
from .formats import Poses2D
from .geometry.observations import apply_intrinsics, resolve_intrinsics
from .io import save_npz
from .models import PoseNet
from .prediction import PredictOptions, _load
from .skeleton import H36M_JOINTS, default_joint_names
from .synthetic.render import crop_affine
from .training.footage import _frames_of_camera, footage_table, warp_crop
from .training.module import images_to_input
from .training.targets import prediction_to_image, targets_to_camera

__all__ = ["FootagePrediction", "FootageSpec", "is_footage", "predict_footage"]


def is_footage(path: Path) -> bool:
    """True for a video file or an image folder (not a single image crop)."""
    from .video import IMAGE_SUFFIXES

    return path.is_dir() or (path.suffix.lower() not in IMAGE_SUFFIXES)


@dataclass(frozen=True)
class FootageSpec:
    """What to predict on.

    Attributes:
        sources: one video or image folder per camera.
        poses2d: detections of those sources (``detect``); None: run ``detector``.
        detector: ``mediapipe`` or ``network`` (with ``detector_checkpoint``) when no ``poses2d``.
        detector_checkpoint: the 2D network of ``detector="network"``.
        intrinsics: rig.json whose cameras give K/dist (else the detections', else a 60° default).
        frames: (start, stop) frames of the detections' timeline (None: all).
    """

    sources: Sequence[Path]
    poses2d: Path | None = None
    detector: str = "mediapipe"
    detector_checkpoint: Path | None = None
    intrinsics: Path | None = None
    frames: tuple[int, int | None] | None = None


@dataclass(frozen=True)
class FootagePrediction:
    """What :func:`predict_footage` wrote: ``cameras`` x ``frames`` predictions, ``with_person`` views."""

    cameras: int
    frames: int
    with_person: int
    overlays: int


def _detections(spec: FootageSpec) -> Poses2D:
    """The detections of ``spec``: its ``poses2d.npz``, or the detector run on its frames only
    (their ``frame_index`` then starts at ``frames[0]``)."""
    if spec.poses2d is not None:
        p2d = Poses2D.load(spec.poses2d)
    else:
        from .detectors.run import DetectOptions, detect_sources

        start, stop = spec.frames or (0, None)
        opts = DetectOptions(
            detector=spec.detector, checkpoint=spec.detector_checkpoint, start=start, stop=stop
        )
        p2d = detect_sources([Path(s) for s in spec.sources], opts)
    if spec.intrinsics is not None:
        p2d = apply_intrinsics(p2d, Rig.load(spec.intrinsics))
    return p2d


@torch.no_grad()
def _run(model: PoseNet, crops: list[np.ndarray], batch: int) -> np.ndarray:
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(crops), batch):
        x = torch.from_numpy(np.stack(crops[i : i + batch])).to(device)
        out.append(model(images_to_input(x))["joints3d"].float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_joints, 3), np.float32)


def predict_footage(
    checkpoint: Path,
    spec: FootageSpec,
    output: Path,
    *,
    overlays: Path | None = None,
    overlay_every: int = 1,
    animation: Path | None = None,
    animation_camera: int = 0,
    options: PredictOptions = PredictOptions(),
    progress: bool = True,
) -> FootagePrediction:
    """Predict a 3D pose in every view of ``spec`` and write ``output`` (keys in the module doc),
    with ``overlays`` (``<camera>_<frame>.png``: the frame with its 2D pose beside the 3D pose,
    every ``overlay_every``-th frame) and an ``animation`` (.gif/.mp4) of one camera's 3D poses.

    Raises:
        InputError: a missing source, detections of another camera count or image size, a video
            shorter than its detections, an unknown detector, a checkpoint that is not a 3D network.
    """
    if output.suffix != ".npz":
        raise InputError(f"--output {output} must end in .npz")
    sources = [Path(s) for s in spec.sources]
    for s in sources:
        if not s.exists():
            raise InputError(f"{s}: no such video or image folder")
    model, config, ref = _load(checkpoint, options)
    if not config.is_3d:
        raise InputError(f"{checkpoint} is a 2D network (depth_bins = 1): predict needs a 3D network")
    if animation is not None and animation.suffix.lower() not in (".gif", ".mp4"):
        raise InputError(f"--animation {animation} must end in .gif or .mp4")
    p2d = _detections(spec)
    if spec.poses2d is None:
        spec = replace(spec, frames=None)  # the detector ran on those frames only
    src = str(spec.poses2d or "the detections")
    table, _ = footage_table(sources, p2d, None, src=src)
    if not 0 <= animation_camera < table.num_cameras:
        raise InputError(f"--animation-camera {animation_camera}: there are {table.num_cameras} cameras")
    C, F = table.num_cameras, table.num_frames
    keep = np.ones(F, bool)
    if spec.frames is not None:
        start, stop = spec.frames
        if start >= F:
            raise InputError(f"--frames {start}: the detections have only {F} frames")
        keep[:] = False
        keep[start:stop] = True
    present = table.present() & keep[None]
    from .training.footage import check_sources

    table.frame_index = np.where(present, table.frame_index, -1)
    check_sources(table)
    S, J = config.input_size, config.num_joints
    A = np.zeros((C, F, 2, 3))
    if present.any():
        A[present] = crop_affine(table.box_keypoints[present], S)
    pred = np.full((C, F, J, 3), np.nan)
    over: dict[tuple[int, int], np.ndarray] = {}
    want_over = overlays is not None
    bar = tqdm(total=int(present.sum()), desc="predict", unit="view", disable=not progress, leave=False)
    for c in range(C):
        crops, idx = [], []
        for f, frame in _frames_of_camera(table, c, present[c]):
            crops.append(cv2.cvtColor(warp_crop(frame, A[c, f], S), cv2.COLOR_BGR2RGB))
            idx.append(f)
            if want_over and (f - (spec.frames or (0,))[0]) % max(1, overlay_every) == 0:
                over[(c, f)] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            if len(crops) >= options.batch_size:
                pred[c, idx] = _run(model, crops, options.batch_size)
                bar.update(len(crops))
                crops, idx = [], []
        if crops:
            pred[c, idx] = _run(model, crops, options.batch_size)
            bar.update(len(crops))
    bar.close()
    rig, _ = resolve_intrinsics(p2d)
    K, dist = rig.K, rig.dist
    Ainv = np.where(present[..., None, None], A, np.eye(2, 3))  # absent views: any invertible map
    with np.errstate(invalid="ignore"):
        cam = targets_to_camera(pred, K[:, None], dist[:, None], Ainv, S, 1.0, config.depth_range)
        uv = prediction_to_image(pred, Ainv, S)
    cam = np.where(present[..., None, None], cam, np.nan)
    uv = np.where(present[..., None, None], uv, np.nan)
    out = {"poses3d_camera": cam.astype(np.float32)}
    if ref is not None:
        flat = cam.reshape(-1, J, 3)
        ok = present.reshape(-1)
        refined = flat.copy()
        if ok.any():
            root = flat[ok, :1]
            refined[ok] = np.asarray(ref.refine(flat[ok] - root), np.float64) + root
        out["poses3d_camera_unrefined"] = out["poses3d_camera"]
        out["poses3d_camera"] = refined.reshape(cam.shape).astype(np.float32)
    frame_index = np.asarray(p2d.extra.get("frame_index", np.arange(F)), dtype=np.int64).reshape(-1)
    sel = np.flatnonzero(keep)
    save_npz(
        output,
        poses3d_camera=out["poses3d_camera"][:, sel],
        **({"poses3d_camera_unrefined": out["poses3d_camera_unrefined"][:, sel]} if ref is not None else {}),
        poses2d=uv[:, sel].astype(np.float32),
        person=present[:, sel],
        crop_affine=A[:, sel].astype(np.float32),
        frame_index=frame_index[sel],
        K=K,
        dist=dist,
        image_size=np.asarray(p2d.image_size),
        camera_names=np.array(p2d.camera_names),
        joint_names=np.array(default_joint_names(J)),
        units=np.array("arbitrary"),
    )
    n_over = 0
    if want_over and over:
        from .prediction import write_overlays

        if J != len(H36M_JOINTS):
            raise InputError(
                f"--overlays draws the {len(H36M_JOINTS)} Human3.6M joints; this network has {J}"
            )
        keys = sorted(over)
        names = [f"{p2d.camera_names[c]}_{int(frame_index[f]):06d}.png" for c, f in keys]
        p3 = [out["poses3d_camera"][c, f] - out["poses3d_camera"][c, f, :1] for c, f in keys]
        write_overlays(
            overlays, names, [over[k] for k in keys], np.stack([uv[c, f] for c, f in keys]), np.stack(p3)
        )
        n_over = len(keys)
    if animation is not None:
        from .viz import animate_poses3d

        P = out["poses3d_camera"][animation_camera, sel].astype(np.float64)
        P = P - P[:, :1]
        P = np.stack([P[..., 0], P[..., 2], -P[..., 1]], -1)  # camera axes -> x, depth, up
        fps = float(p2d.fps) if p2d.fps else 10.0
        animate_poses3d(P, animation, fps=fps, max_frames=120, title=p2d.camera_names[animation_camera])
    return FootagePrediction(C, len(sel), int(present.sum()), n_over)


# --- datasets: predict --dataset h36m|3dhp --root DIR --split test -----------------------------


@dataclass(frozen=True)
class DatasetPrediction:
    """What :func:`predict_dataset_split` wrote: ``frames`` predictions, their ground truth and
    the protocol's numbers (also in ``<output stem>_protocol.json``)."""

    frames: int
    gt_path: Path
    protocol: dict


def fit_intrinsics(joints2d: np.ndarray, joints3d_camera: np.ndarray) -> np.ndarray:
    """A pinhole K (3, 3) fitted by least squares to 2D-3D correspondences (N, J, 2)/(N, J, 3)
    in the camera frame (MPI-INF-3DHP's test set ships no intrinsics)."""
    X = joints3d_camera.reshape(-1, 3)
    uv = joints2d.reshape(-1, 2)
    ok = np.isfinite(X).all(-1) & np.isfinite(uv).all(-1) & (X[:, 2] > 0)
    x, y = X[ok, 0] / X[ok, 2], X[ok, 1] / X[ok, 2]
    if ok.sum() < 4:
        raise InputError("cannot fit the camera intrinsics: fewer than 4 valid 2D-3D joints")
    (fx, cx), *_ = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), uv[ok, 0], rcond=None)
    (fy, cy), *_ = np.linalg.lstsq(np.stack([y, np.ones_like(y)], 1), uv[ok, 1], rcond=None)
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def predict_dataset_split(
    checkpoint: Path,
    name: str,
    root: Path,
    output: Path,
    *,
    split: str = "test",
    every: int | None = None,
    gt_out: Path | None = None,
    options: PredictOptions = PredictOptions(),
    progress: bool = True,
) -> DatasetPrediction:
    """Predict every image of a dataset split in the paper's protocol and write ``output``
    (``poses3d`` (N, J, 3) mm in each image's camera frame, the root depth from the ground truth;
    ``clip`` (N,) ``subject/sequence`` or the 3DHP sequence; ``image_paths``; ``units`` mm) and its
    ground truth ``gt_out`` (default ``<output stem>_gt.npz``: ``poses3d``, ``clip``), which
    ``epipolarpose evaluate`` compares as stored (MPJPE = protocol 1, P-MPJPE = protocol 2,
    N-MPJPE, PSS). MPI-INF-3DHP is scored on its universal skeleton; its PCK/AUC over the 14
    protocol joints are in ``<output stem>_protocol.json``.

    Crops are the paper's: a square box around the ground-truth 2D joints (1.3 x their extent).
    """
    from .datasets import H36M, MPIINF3DHPTest, pck_auc
    from .io import save_json
    from .metrics import evaluate_poses

    if output.suffix != ".npz":
        raise InputError(f"--output {output} must end in .npz")
    if name not in ("h36m", "3dhp"):
        raise InputError(f"unknown --dataset {name!r}; choose h36m or 3dhp")
    model, config, ref = _load(checkpoint, options)
    if not config.is_3d:
        raise InputError(f"{checkpoint} is a 2D network (depth_bins = 1): predict needs a 3D network")
    if name == "h36m":
        if split not in ("train", "test"):
            raise InputError(f"--split must be train or test, got {split!r}")
        ds = H36M(root, split=split, every=every or 64)
        j2, gt = ds.joints2d, ds.joints3d_camera
        K = np.stack([ds.cameras[(str(s), str(c))].K for s, c in zip(ds.subjects, ds.camera_names)])
        dist = np.stack([ds.cameras[(str(s), str(c))].dist for s, c in zip(ds.subjects, ds.camera_names)])
        clip = np.array([f"{s}/{q}" for s, q in zip(ds.subjects, ds.sequences)])
        activities = None
    else:
        if split != "test":
            raise InputError("MPI-INF-3DHP: only its test set has a reader (--split test)")
        ds = MPIINF3DHPTest(root)
        if every:
            keep = np.arange(len(ds)) % every == 0
            idx = np.flatnonzero(keep)
        else:
            idx = np.arange(len(ds))
        j2, gt = ds.joints2d[idx], ds.joints3d_univ[idx]
        clip = ds.sequence_names[idx]
        K = np.zeros((len(idx), 3, 3))
        for seq in np.unique(clip):  # intrinsics fitted per sequence from its own 2D-3D annotation
            sel = clip == seq
            K[sel] = fit_intrinsics(j2[sel], ds.joints3d_camera[idx][sel])
        dist = np.zeros((len(idx), 5))
        activities = ds.activities[idx]
        ds_paths = [ds.image_paths[i] for i in idx]
    paths = ds.image_paths if name == "h36m" else ds_paths
    S = config.input_size
    A = crop_affine(j2, S)
    pred = np.zeros(gt.shape)
    step = options.batch_size
    for i in tqdm(
        range(0, len(paths), step), desc="predict", unit="batch", disable=not progress, leave=False
    ):
        crops = []
        for k in range(i, min(i + step, len(paths))):
            img = cv2.imread(str(paths[k]), cv2.IMREAD_COLOR)
            if img is None:
                raise InputError(f"image {paths[k]} is missing or unreadable")
            crops.append(cv2.cvtColor(warp_crop(img, A[k], S), cv2.COLOR_BGR2RGB))
        pred[i : i + len(crops)] = _run(model, crops, step)
    cam = targets_to_camera(pred, K, dist, A, S, gt[:, 0, 2], config.depth_range)
    out = {"poses3d": cam.astype(np.float32)}
    if ref is not None:
        root_ = cam[:, :1]
        out["poses3d_unrefined"] = out["poses3d"]
        out["poses3d"] = (np.asarray(ref.refine(cam - root_), np.float64) + root_).astype(np.float32)
    gt_path = gt_out or output.with_name(output.stem + "_gt.npz")
    names = np.array(default_joint_names(config.num_joints))
    save_npz(
        output,
        **out,
        units=np.array("mm"),
        joint_names=names,
        clip=clip,
        image_paths=np.array([str(p) for p in paths]),
    )
    save_npz(gt_path, poses3d=gt.astype(np.float32), clip=clip, joint_names=names)
    summary = evaluate_poses(out["poses3d"], gt)["summary"]
    protocol: dict = {
        "dataset": name,
        "split": split,
        "images": len(paths),
        "mpjpe_mm (protocol 1, ground-truth root depth)": summary["mpjpe"],
        "p_mpjpe_mm (protocol 2)": summary["p_mpjpe"],
        "n_mpjpe_mm": summary["n_mpjpe"],
    }
    if name == "3dhp":
        protocol["pck_auc (14 joints, universal skeleton)"] = pck_auc(out["poses3d"], gt, activities)
    save_json(output.with_name(output.stem + "_protocol.json"), protocol)
    return DatasetPrediction(len(paths), gt_path, protocol)
