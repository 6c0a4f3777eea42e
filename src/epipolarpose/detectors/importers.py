"""Import existing 2D detections: COCO keypoint JSON files and OpenPose per-frame JSON folders.

One file (COCO) or folder (OpenPose) per camera. Several people per frame are reduced to one with
:func:`~epipolarpose.detectors.base.select_track`. Joint sets map to Human3.6M-17 like COCO-17
(pelvis = mean of hips, thorax = mean of shoulders, spine = their mean, Neck/Nose = nose,
Head = mean of the ears):

* COCO-17 (``annotations`` of a dataset file, or a list of results ``{image_id, keypoints,
  score}``): ``[x, y, v] * 17``. Visibility flags 0/1/2 of ground-truth files become scores 0/1/1
  and a result's third value is its confidence;
* OpenPose BODY_25 and COCO-18 (``*_keypoints.json`` per frame, ``people[i].pose_keypoints_2d``
  = ``[x, y, c] * 25`` or ``* 18``, told apart by length); ``(0, 0, 0)`` means missing.

:func:`read_coco` / :func:`read_openpose` also return the file's own keypoints (the *native*
landmarks, ``poses2d.npz``'s ``keypoints_native``) of the person followed, in the file's order:
:data:`~epipolarpose.skeleton.COCO17_JOINTS`, :data:`OPENPOSE_BODY25_JOINTS` or
:data:`OPENPOSE_COCO18_JOINTS`. Native names are lower snake_case with ``left_``/``right_``
prefixes for every detector (OpenPose's ``RShoulder`` is ``right_shoulder``, ``LBigToe`` is
``left_big_toe``), in the order of the detector's output.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import InputError
from ..skeleton import COCO17, COCO17_JOINTS, JointMapping, _coco_like_recipe
from .base import select_track_index, take_person

OPENPOSE_BODY25_JOINTS: tuple[str, ...] = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "mid_hip",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
    "left_big_toe",
    "left_small_toe",
    "left_heel",
    "right_big_toe",
    "right_small_toe",
    "right_heel",
)

OPENPOSE_COCO18_JOINTS: tuple[str, ...] = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)

#: OpenPose BODY_25 -> H36M (same recipe as COCO-17; OpenPose's own neck and mid-hip are not used,
#: so that every importer derives pelvis/thorax the same way).
OPENPOSE_BODY25 = JointMapping(
    name="openpose_body25",
    source_joints=OPENPOSE_BODY25_JOINTS,
    recipe=_coco_like_recipe("nose", ("left_ear", "right_ear")),
)

#: OpenPose COCO-18 -> H36M.
OPENPOSE_COCO18 = JointMapping(
    name="openpose_coco18",
    source_joints=OPENPOSE_COCO18_JOINTS,
    recipe=_coco_like_recipe("nose", ("left_ear", "right_ear")),
)


class ImportedDetections(NamedTuple):
    """One camera's imported detections (N frames, one person per frame).

    Attributes:
        keypoints: (N, 17, 2) float32 Human3.6M pixels, NaN where missing.
        scores: (N, 17) float32 in [0, 1], 0 where missing.
        frame_names: N frame names (COCO image file names / ids, OpenPose file names).
        image_size: (width, height) if the file gives one, else None.
        keypoints_native: (N, K, 2) float32 pixels of the file's own keypoints, NaN where missing.
        scores_native: (N, K) float32 in [0, 1].
        joint_names_native: K names (``COCO17_JOINTS``, ``OPENPOSE_BODY25_JOINTS``, ...).
    """

    keypoints: np.ndarray
    scores: np.ndarray
    frame_names: list[str]
    image_size: tuple[int, int] | None
    keypoints_native: np.ndarray
    scores_native: np.ndarray
    joint_names_native: tuple[str, ...]


def _native(xyc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., S, 3) x, y, confidence -> keypoints (..., S, 2) (NaN where confidence <= 0) and
    scores (..., S) clipped to [0, 1]."""
    ok = np.isfinite(xyc).all(-1) & (xyc[..., 2] > 0)
    kp = np.where(ok[..., None], xyc[..., :2], np.nan)
    return kp, np.where(ok, np.clip(xyc[..., 2], 0, 1), 0.0)


def _follow_one(mapping: JointMapping, xyc: np.ndarray) -> tuple[np.ndarray, ...]:
    """(N, P, S, 3) candidates -> mapped keypoints (N, 17, 2), scores (N, 17) and native keypoints
    (N, S, 2), scores (N, S) of the person :func:`~.base.select_track` follows."""
    kp, sc = _map(mapping, xyc)
    person = select_track_index(kp, sc)
    kp, sc = take_person(kp, sc, person)
    kpn, scn = take_person(*_native(xyc), person)
    return kp, sc, kpn, scn


def _map(mapping: JointMapping, xyc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., S, 3) x, y, confidence -> H36M keypoints (..., 17, 2) and scores (..., 17)."""
    xy = np.where((xyc[..., 2:3] > 0), xyc[..., :2], np.nan)
    kp = mapping.apply(xy)
    sc = mapping.apply_scores(np.where(np.isfinite(xy).all(-1), xyc[..., 2], 0))
    bad = ~np.isfinite(kp).all(-1) | (sc <= 0)
    kp[bad] = np.nan
    sc[bad] = 0
    return kp, np.clip(sc, 0, 1)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not a readable JSON file ({e})") from None


def _stack_people(per_frame: list[list[np.ndarray]], num_joints: int) -> np.ndarray:
    """Pad lists of (S, 3) arrays to (N, P, S, 3) (zeros = missing)."""
    P = max([len(p) for p in per_frame] + [1])
    out = np.zeros((len(per_frame), P, num_joints, 3))
    for n, people in enumerate(per_frame):
        for p, a in enumerate(people):
            out[n, p] = a
    return out


def load_coco(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[str], tuple[int, int] | None]:
    """Read one camera's COCO keypoint JSON (:func:`read_coco` without the native keypoints).

    Returns:
        keypoints (N, 17, 2), scores (N, 17), frame names (N,), image size (width, height) if the
        file gives one.
    """
    d = read_coco(path)
    return d.keypoints, d.scores, d.frame_names, d.image_size


def read_coco(path: str | os.PathLike) -> ImportedDetections:
    """Read one camera's COCO keypoint JSON.

    Accepts a dataset file (``{"images": [...], "annotations": [...]}``; frames are the images
    sorted by ``file_name``) or a results list (``[{"image_id", "keypoints", "score"}, ...]``;
    frames are the sorted distinct ``image_id``).

    Returns:
        :class:`ImportedDetections`, native keypoints in :data:`COCO17_JOINTS` order.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    data = _read_json(path)
    size = None
    if isinstance(data, dict):
        if "annotations" not in data:
            raise InputError(f"{path}: COCO file has no 'annotations'")
        anns = data["annotations"]
        images = sorted(data.get("images", []), key=lambda im: str(im.get("file_name", im.get("id"))))
        frame_ids = [im["id"] for im in images] or sorted({a["image_id"] for a in anns})
        names = [str(im.get("file_name", im["id"])) for im in images] or [str(i) for i in frame_ids]
        sizes = {(int(im["width"]), int(im["height"])) for im in images if "width" in im and "height" in im}
        if len(sizes) > 1:
            raise InputError(f"{path}: images of one camera have different sizes {sorted(sizes)}")
        size = sizes.pop() if sizes else None
        ground_truth = True
    elif isinstance(data, list):
        anns = data
        frame_ids = sorted({a.get("image_id") for a in anns}, key=lambda x: (str(type(x)), x))
        names = [str(i) for i in frame_ids]
        ground_truth = False
    else:
        raise InputError(f"{path}: expected a COCO dataset object or a list of results")
    index = {fid: n for n, fid in enumerate(frame_ids)}
    per_frame: list[list[np.ndarray]] = [[] for _ in frame_ids]
    for k, a in enumerate(anns):
        kp = np.asarray(a.get("keypoints", []), dtype=np.float64)
        if kp.size != 51:
            raise InputError(f"{path}: annotation {k} has {kp.size} keypoint values, expected 17 x 3 = 51")
        if a.get("image_id") not in index:
            continue
        xyc = kp.reshape(17, 3).copy()
        if ground_truth:
            xyc[:, 2] = (xyc[:, 2] > 0).astype(float)
        per_frame[index[a["image_id"]]].append(xyc)
    if not frame_ids:
        raise InputError(f"{path}: no frames / keypoint annotations")
    kp, sc, kpn, scn = _follow_one(COCO17, _stack_people(per_frame, 17))
    return ImportedDetections(kp, sc, names, size, kpn, scn, COCO17_JOINTS)


def _frame_number(p: Path) -> tuple:
    nums = re.findall(r"\d+", p.name)
    return (int(nums[-1]) if nums else -1, p.name)


def load_openpose(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read one camera's OpenPose output folder (:func:`read_openpose` without the native keypoints).

    Returns:
        keypoints (N, 17, 2), scores (N, 17), frame file names (N,).
    """
    d = read_openpose(folder)
    return d.keypoints, d.scores, d.frame_names


def read_openpose(folder: str | os.PathLike) -> ImportedDetections:
    """Read one camera's OpenPose output folder (one ``*.json`` per frame, sorted by the last
    number in the file name, e.g. ``video_000000000012_keypoints.json``).

    Returns:
        :class:`ImportedDetections` (no image size: OpenPose files have none), native keypoints in
        :data:`OPENPOSE_BODY25_JOINTS` or :data:`OPENPOSE_COCO18_JOINTS` order.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of OpenPose JSON files")
    files = sorted(folder.glob("*.json"), key=_frame_number)
    if not files:
        raise InputError(f"{folder}: no OpenPose *.json files")
    per_frame: list[list[np.ndarray]] = []
    mapping = None
    for f in files:
        people = []
        for p in _read_json(f).get("people", []):
            a = np.asarray(p.get("pose_keypoints_2d", []), dtype=np.float64)
            if a.size == 0:
                continue
            m = {75: OPENPOSE_BODY25, 54: OPENPOSE_COCO18}.get(a.size)
            if m is None:
                raise InputError(
                    f"{f}: pose_keypoints_2d has {a.size} values; expected 75 (BODY_25) or 54 (COCO-18)"
                )
            if mapping is not None and m is not mapping:
                raise InputError(f"{f}: mixes BODY_25 and COCO-18 keypoints in one folder")
            mapping = m
            people.append(a.reshape(-1, 3))
        per_frame.append(people)
    if mapping is None:
        raise InputError(f"{folder}: no person in any OpenPose file")
    kp, sc, kpn, scn = _follow_one(mapping, _stack_people(per_frame, len(mapping.source_joints)))
    return ImportedDetections(kp, sc, [f.name for f in files], None, kpn, scn, mapping.source_joints)
