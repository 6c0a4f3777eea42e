"""Human3.6M and MPI-INF-3DHP as multi-view training sources (``train --dataset h36m|3dhp
--root DIR``), in the settings of the paper's table, through the crop cache of :mod:`.footage`.

Human3.6M's training split (S1, S5, S6, S7, S8 unless ``--subject``; every ``--every``-th frame,
default 5) is read with :class:`~epipolarpose.datasets.H36M`; the images of one instant in the
four cameras form a multi-view frame. MPI-INF-3DHP's training set (S1-S8, Seq1 and Seq2, cameras
0-2 and 4-8; every 10th frame by default) is read with
:class:`~epipolarpose.datasets.MPIINF3DHPTrain`, straight from its videos (or folders of their
frames); one instant of a sequence in its eight cameras is a multi-view frame. Crops are the
paper's: a square box around the ground-truth 2D joints (1.3 x their extent). Labels are made per
*group* of frames that share cameras: a Human3.6M subject, a 3DHP sequence. Supervision:

* ``full``: the ground-truth 3D in each camera's frame;
* ``rt``: a frozen 2D network (``--init-2d``) detects the joints in every view, and
  :func:`~epipolarpose.labelling.label_poses` triangulates them with each subject's known cameras;
* ``self``: the same **without extrinsics**: each subject's rig is self-calibrated from the
  detections (intrinsics known, as in the paper), then triangulated;
* ``2d``: the ground-truth 2D (the 2D network).

3DHP's test set (:class:`~epipolarpose.datasets.MPIINF3DHPTest`) is single-view; it is what
``predict --dataset 3dhp --split test`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..formats import Poses2D
from ..labelling import label_poses
from .footage import CropCache, FootageAugment, ViewTable

__all__ = [
    "DATASETS",
    "DatasetOptions",
    "MultiViewH36M",
    "MultiViewSet",
    "dataset_labels",
    "dataset_views",
    "h36m_multiview",
    "mpi_multiview",
]

DATASETS = ("h36m", "3dhp")
#: default frame stride of the training split (Human3.6M is 50 fps: every 5th frame is 10 fps;
#: 3DHP's training videos are 25 or 50 fps and its cameras many: every 10th frame)
TRAIN_EVERY = {"h36m": 5, "3dhp": 10}


@dataclass(frozen=True)
class DatasetOptions:
    """A dataset as training data (``train --dataset NAME --root DIR``).

    Attributes:
        name: ``h36m`` or ``3dhp``.
        root: the dataset folder (``docs/datasets.md``).
        every: keep every ``every``-th frame (default :data:`TRAIN_EVERY`).
        subjects: training subjects (default Human3.6M's S1, S5, S6, S7, S8; 3DHP's S1-S8).
        crop_cache: where the crops are cached (default ``OUT/crop_cache``).
        augment: augmentation of the crops.
    """

    name: str
    root: Path
    every: int | None = None
    subjects: tuple[str, ...] = ()
    crop_cache: Path | None = None
    augment: FootageAugment = FootageAugment()


@dataclass
class MultiViewSet:
    """A dataset's images grouped into multi-view frames.

    Attributes:
        table: the views (image files or videos, boxes around the ground-truth 2D).
        camera_ids: the C camera ids (columns).
        subjects: (F,) the group of every frame whose cameras are fixed (a Human3.6M subject, a
            3DHP sequence ``S1/Seq1``); sequences: (F,) its sequence; frames: (F,) frame numbers
            (Human3.6M 1-based, 3DHP 0-based video frames).
        joints2d: (C, F, J, 2) ground-truth 2D; joints3d_camera: (C, F, J, 3) mm (NaN: no view).
        K, dist: (C, F, 3, 3), (C, F, 5) of every view's camera.
        cameras: ``{(group, camera id): Camera}``.
    """

    table: ViewTable
    camera_ids: list[str]
    subjects: np.ndarray
    sequences: np.ndarray
    frames: np.ndarray
    joints2d: np.ndarray
    joints3d_camera: np.ndarray
    K: np.ndarray
    dist: np.ndarray
    cameras: dict


#: the former name (Human3.6M was the first dataset)
MultiViewH36M = MultiViewSet


def h36m_multiview(
    root: Path, subjects: tuple[str, ...] | None, every: int, split: str = "train"
) -> MultiViewSet:
    """Read a Human3.6M split (:class:`~epipolarpose.datasets.H36M`) and group its images into
    multi-view frames (one per subject, sequence and frame number)."""
    from ..datasets import H36M
    from ..datasets.h36m import CAMERA_IDS

    ds = H36M(root, split=split, subjects=list(subjects) if subjects else None, every=every)
    cam_ids = [c for c in CAMERA_IDS if c in set(ds.camera_names)]
    cam_ids += sorted(set(ds.camera_names) - set(cam_ids))
    keys = list(zip(ds.subjects, ds.sequences, ds.frames))
    uniq = list(dict.fromkeys(keys))
    fidx = {k: i for i, k in enumerate(uniq)}
    C, F, J = len(cam_ids), len(uniq), ds.joints2d.shape[1]
    paths = np.full((C, F), None, dtype=object)
    j2 = np.full((C, F, J, 2), np.nan)
    j3 = np.full((C, F, J, 3), np.nan)
    K = np.tile(np.eye(3), (C, F, 1, 1))
    dist = np.zeros((C, F, 5))
    size = np.zeros((C, 2), np.int64)
    for i, k in enumerate(keys):
        c, f = cam_ids.index(str(ds.camera_names[i])), fidx[k]
        paths[c, f] = ds.image_paths[i]
        j2[c, f], j3[c, f] = ds.joints2d[i], ds.joints3d_camera[i]
        cam = ds.cameras[(str(ds.subjects[i]), str(ds.camera_names[i]))]
        K[c, f], dist[c, f] = cam.K, cam.dist
        size[c] = cam.image_size
    table = ViewTable(names=cam_ids, image_size=size, box_keypoints=j2, paths=paths)
    subj = np.array([k[0] for k in uniq])
    seq = np.array([k[1] for k in uniq])
    fr = np.array([k[2] for k in uniq], dtype=np.int64)
    return MultiViewSet(table, cam_ids, subj, seq, fr, j2, j3, K, dist, dict(ds.cameras))


def mpi_multiview(root: Path, subjects: tuple[str, ...] | None, every: int) -> MultiViewSet:
    """Read MPI-INF-3DHP's training set (:class:`~epipolarpose.datasets.MPIINF3DHPTrain`) as
    multi-view frames: every kept frame of every sequence, its views decoded from the videos."""
    from ..datasets import MPIINF3DHPTrain
    from ..datasets.mpi_inf_3dhp import TRAIN_SUBJECTS

    ds = MPIINF3DHPTrain(root, subjects=subjects or TRAIN_SUBJECTS, every=every)
    seqs = [s for s in ds.sequences if len(s.frames)]
    cam_ids = [str(c) for c in ds.camera_numbers]
    C = len(cam_ids)
    size = np.array([seqs[0].cameras[c].image_size for c in range(C)], np.int64)
    for s in seqs:
        other = np.array([cam.image_size for cam in s.cameras])
        if (other != size).any():
            bad = int(np.flatnonzero((other != size).any(1))[0])
            raise InputError(
                f"MPI-INF-3DHP {s.name}: camera {cam_ids[bad]} has {tuple(other[bad])} images but "
                f"{tuple(size[bad])} in {seqs[0].name}; a camera must keep its image size"
            )
    cat = lambda key: np.concatenate([getattr(s, key) for s in seqs], axis=1)  # noqa: E731
    j2, j3 = cat("joints2d"), cat("joints3d_camera")
    segment = np.concatenate([np.full(len(s.frames), i) for i, s in enumerate(seqs)])
    frames = np.concatenate([s.frames for s in seqs])
    names = np.array([s.name for s in seqs])[segment]
    K = np.stack([np.stack([s.cameras[c].K for s in seqs])[segment] for c in range(C)])
    dist = np.stack([np.stack([s.cameras[c].dist for s in seqs])[segment] for c in range(C)])
    table = ViewTable(
        names=cam_ids,
        image_size=size,
        box_keypoints=j2,
        sources=[[s.sources[c] for s in seqs] for c in range(C)],
        frame_index=np.tile(frames, (C, 1)),
        segment=segment,
    )
    cameras = {(s.name, cam_ids[c]): s.cameras[c] for s in seqs for c in range(C)}
    seq_names = np.array([n.split("/")[1] for n in names])
    return MultiViewSet(table, cam_ids, names, seq_names, frames, j2, j3, K, dist, cameras)


def dataset_labels(
    mv: MultiViewSet, keypoints: np.ndarray, supervision: str, *, progress: bool = False
) -> dict:
    """Pseudo-labels from detections (C, F, J, 2) of every view, one labelling run per group
    (``mv.subjects``: its cameras are fixed): triangulated with the group's known cameras (``rt``;
    Human3.6M needs each subject's ``rig.json``) or self-calibrated (``self``). Returns the dataset arrays
    (``labels_camera`` (C, F, J, 3), ``labels_valid`` (F, J)) and a summary per subject."""
    from ..camera import Rig

    C, F, J = keypoints.shape[:3]
    lab = np.full((C, F, J, 3), np.nan)
    valid = np.zeros((F, J), bool)
    summary = {}
    for s in np.unique(mv.subjects):
        sel = np.flatnonzero(mv.subjects == s)
        cams = [mv.cameras.get((str(s), c)) for c in mv.camera_ids]
        if any(c is None for c in cams):
            missing = [mv.camera_ids[i] for i, c in enumerate(cams) if c is None]
            raise InputError(f"{s}: no images of camera(s) {', '.join(missing)}; labels need every camera")
        kp = keypoints[:, sel]
        p2d = Poses2D(
            keypoints=kp,
            scores=np.isfinite(kp).all(-1).astype(np.float32),
            image_size=[c.image_size for c in cams],
            camera_names=list(mv.camera_ids),
            K=np.stack([c.K for c in cams]),
            dist=np.stack([c.dist for c in cams]),
        )
        if supervision == "rt":
            if all(np.allclose(c.R, np.eye(3)) and np.allclose(c.t, 0) for c in cams):
                raise InputError(
                    f"Human3.6M {s} has no rig.json: --supervision rt needs the known extrinsics (docs/datasets.md)"
                )
            rig = Rig(cams, units="mm")
        else:
            rig = None
        try:
            res = label_poses(p2d, rig=rig, progress=progress)
        except InputError as e:
            raise InputError(f"{s}: labelling its {len(sel)} frames failed: {e}") from None
        lab[:, sel] = np.where(res.labels.valid[None, ..., None], res.labels.poses3d_camera, np.nan)
        valid[sel] = res.labels.valid
        summary[str(s)] = {"frames": int(len(sel)), "valid_fraction": float(res.labels.valid.mean())}
    return {"labels_camera": lab, "labels_valid": valid, "summary": summary}


def detect_in_cache(model: Any, cache: CropCache, batch: int = 32) -> np.ndarray:
    """A frozen 2D network's joints (C, F, J, 2) in image pixels on every cached crop (no augmentation)."""
    import torch

    from .module import images_to_input
    from .targets import prediction_to_image

    C, F = cache.present.shape
    S = cache.size
    out = np.full((C, F, model.config.num_joints, 2), np.nan)
    views = np.argwhere(cache.present)
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for i in range(0, len(views), batch):
            vv = views[i : i + batch]
            x = torch.from_numpy(np.stack([cache.crop(c, f) for c, f in vv])).to(device)
            pred = model(images_to_input(x))["joints2d"].float().cpu().numpy()
            out[vv[:, 0], vv[:, 1]] = prediction_to_image(pred, cache.affines[vv[:, 0], vv[:, 1]], S)
    return out


def dataset_views(opts: Any, cfg: Any, init2d: Any) -> Any:
    """The :class:`~.real.RealViews` of ``opts.dataset`` (see the module docstring)."""
    from .real import RealViews

    do: DatasetOptions = opts.dataset
    if do.name not in DATASETS:
        raise InputError(f"unknown --dataset {do.name!r}; choose one of {', '.join(DATASETS)}")
    every = do.every or TRAIN_EVERY[do.name]
    if every < 1:
        raise InputError(f"--every must be >= 1, got {every}")
    if do.name == "3dhp":
        mv = mpi_multiview(Path(do.root), do.subjects or None, every)
    else:
        mv = h36m_multiview(Path(do.root), do.subjects or None, every)
    sup = opts.supervision
    summary: dict[str, Any] = {
        "source": do.name,
        "root": str(do.root),
        "subjects": sorted({str(g).split("/")[0] for g in mv.subjects.tolist()}),
        "every": every,
    }
    if sup == "2d":
        arrays: dict[str, Any] = {"keypoints": mv.joints2d}
    elif sup == "full":
        arrays = {"labels_camera": mv.joints3d_camera}
    else:
        if init2d is None:
            raise InputError(
                f"--dataset {do.name} --supervision {sup} needs --init-2d CKPT: the frozen 2D network whose "
                "detections are triangulated (the paper's setting)"
            )

        def prepare(cache: CropCache) -> dict:
            det = detect_in_cache(init2d, cache)
            res = dataset_labels(mv, det, sup, progress=opts.progress)
            summary["labels"] = res.pop("summary")
            return res

        arrays = {"prepare": prepare}
    arrays.update(K=mv.K, dist=mv.dist, gt_camera=mv.joints3d_camera.astype(np.float32))
    return RealViews(mv.table, sup, arrays, np.ones(mv.table.num_frames, bool), {}, summary)
