"""Motion capture: a BVH reader with forward kinematics, and loading clips as H36M-17 poses.

* :func:`read_bvh` parses any BVH (any Euler channel order per joint, 3 or 6 channels per joint).
  :meth:`BVH.forward_kinematics` gives joint positions in file units, optionally resampled to
  another frame rate (rotations are slerped and translations interpolated linearly, so bone lengths
  stay exact).
* :func:`load_mocap` turns a Bandai-Namco or CMU BVH into a :class:`Motion`: Human3.6M-17 joints
  (head top synthesised, see :func:`epipolarpose.skeleton.synthesize_head_top`), millimetres, world
  z-up (``(x, y, z) -> (x, -z, y)``), centred on the origin in x and y (feet stay on the floor).
* :func:`clip_split` / :func:`list_shared_clips`: the documented train/test split *by clip*.

BVH conventions (as in ``../shared/README.md``): Euler channels compose left to right
(``Zrotation Xrotation Yrotation`` means ``R = Rz @ Rx @ Ry``), and a joint's global transform is
``G_parent @ T(position channels if present, else OFFSET) @ R_local``.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from .errors import InputError
from .skeleton import MOCAP_MAPPINGS, synthesize_head_top

#: The bundled CMU clip (subject 131, trial 01), the default motion of ``epipolarpose synth``.
DEFAULT_BVH: Path = Path(str(resources.files("epipolarpose") / "data" / "cmu_131_01.bvh"))

#: Millimetres per file unit for the unit names accepted by :func:`load_mocap`.
UNITS_MM: dict[str, float] = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "inch": 25.4}

#: Joint of each mocap skeleton from which the head top is synthesised (along thorax -> it).
HEAD_JOINT = {"bandai": "Head", "cmu": "Head"}

#: Joints of each skeleton that span the thigh (used to guess the file's units).
_THIGH = {"bandai": ("UpperLeg_R", "LowerLeg_R"), "cmu": ("RightHip", "RightKnee")}
_THIGH_MM = 420.0  # a typical adult thigh (hip -> knee) in mm

_POS_CHANNELS = {"xposition": 0, "yposition": 1, "zposition": 2}
_ROT_CHANNELS = {"xrotation": "X", "yrotation": "Y", "zrotation": "Z"}


@dataclass
class BVHJoint:
    """One joint of a BVH hierarchy.

    Attributes:
        name: joint name.
        parent: index of the parent joint (-1 for the root).
        offset: (3,) offset from the parent, file units.
        channels: channel names in file order (e.g. ``["Xposition", ..., "Zrotation", ...]``).
        channel_start: column of the first channel in the motion table.
        end_site: (3,) offset of the joint's ``End Site`` or None.
    """

    name: str
    parent: int
    offset: np.ndarray
    channels: list[str]
    channel_start: int
    end_site: np.ndarray | None = None

    @property
    def euler_order(self) -> str:
        """Intrinsic Euler order of the rotation channels, e.g. ``"ZXY"`` (``""`` if none)."""
        return "".join(_ROT_CHANNELS[c.lower()] for c in self.channels if c.lower() in _ROT_CHANNELS)


@dataclass
class BVH:
    """A parsed BVH file.

    Attributes:
        joints: the hierarchy in file order (parents before children).
        motion: (F, total_channels) channel values, angles in degrees.
        frame_time: seconds per frame.
        path: the file it came from.
    """

    joints: list[BVHJoint]
    motion: np.ndarray
    frame_time: float
    path: Path | None = None

    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]

    @property
    def num_frames(self) -> int:
        return self.motion.shape[0]

    @property
    def fps(self) -> float:
        """Frames per second: ``1 / frame_time``, snapped to the nearest integer when within 0.1 %
        (files store 0.008333 s for 120 fps)."""
        fps = 1.0 / self.frame_time
        return float(round(fps)) if abs(fps - round(fps)) < 1e-3 * fps else fps

    def index(self, name: str) -> int:
        return self.joint_names.index(name)

    def local_transforms(self, frames: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-joint local rotations and translations, all joints at once.

        Args:
            frames: (F,) indices of the frames wanted (None: all).
        Returns:
            ``quaternions``: (F, N, 4) local rotations, scalar-last (scipy's ``xyzw``);
            ``translations``: (F, N, 3) in file units (position channels where present, else the
            joint's OFFSET).
        """
        motion = self.motion if frames is None else self.motion[np.asarray(frames)]
        F, N = len(motion), len(self.joints)
        trans = np.empty((F, N, 3))
        quats = np.zeros((F, N, 4))
        quats[..., 3] = 1.0  # joints without rotation channels: identity
        by_order: dict[str, tuple[list[int], list[np.ndarray]]] = {}
        for k, j in enumerate(self.joints):
            cols = motion[:, j.channel_start : j.channel_start + len(j.channels)]
            trans[:, k] = j.offset
            rot_cols = []
            for c, name in enumerate(j.channels):
                low = name.lower()
                if low in _POS_CHANNELS:
                    trans[:, k, _POS_CHANNELS[low]] = cols[:, c]
                elif low in _ROT_CHANNELS:
                    rot_cols.append(c)
            if j.euler_order:
                ks, angles = by_order.setdefault(j.euler_order, ([], []))
                ks.append(k)
                angles.append(cols[:, rot_cols])
        for order, (ks, angles) in by_order.items():  # one batch per Euler order
            quats[:, ks] = euler_to_quaternion(order, np.stack(angles, 1))
        return quats, trans

    def forward_kinematics(self, fps: float | None = None, end_sites: bool = False) -> np.ndarray:
        """Global joint positions in file units.

        Args:
            fps: resample to this frame rate first (times ``0, 1/fps, ...`` within the clip;
                local rotations slerped, translations linear). None keeps the file's frames.
            end_sites: also return the End Site positions, appended after the joints in the order
                of :attr:`joints` that have one.
        Returns:
            (F, N, 3), or (F, N + E, 3) with ``end_sites``.
        """
        if fps is None:
            quats, trans = self.local_transforms()
        else:  # only the source frames that bracket an output time are converted
            i0, w = _resample_plan(self.num_frames, 1.0 / self.fps, fps)
            i1 = np.where(w > 0, i0 + 1, i0)
            need = np.unique(np.concatenate([i0, i1]))
            q, t = self.local_transforms(need)
            a, b = np.searchsorted(need, i0), np.searchsorted(need, i1)
            quats = slerp(q[a], q[b], w[:, None])
            trans = t[a] * (1.0 - w)[:, None, None] + t[b] * w[:, None, None]
        F, N = trans.shape[:2]
        R_local = Rotation.from_quat(quats.reshape(-1, 4)).as_matrix().reshape(F, N, 3, 3)
        G_R = np.empty((F, N, 3, 3))
        G_t = np.empty((F, N, 3))
        for k, j in enumerate(self.joints):
            if j.parent < 0:
                G_R[:, k] = R_local[:, k]
                G_t[:, k] = trans[:, k]
            else:
                p = j.parent
                np.matmul(G_R[:, p], R_local[:, k], out=G_R[:, k])
                G_t[:, k] = G_t[:, p] + np.einsum("fij,fj->fi", G_R[:, p], trans[:, k])
        if not end_sites:
            return G_t
        ends = [
            G_t[:, k] + np.einsum("fij,j->fi", G_R[:, k], j.end_site)
            for k, j in enumerate(self.joints)
            if j.end_site is not None
        ]
        return np.concatenate([G_t, np.stack(ends, 1)], 1) if ends else G_t


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products of (..., 4) scalar-last quaternions (the rotation ``a`` after ``b``'s frame)."""
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        -1,
    )


def euler_to_quaternion(order: str, angles_deg: np.ndarray) -> np.ndarray:
    """Intrinsic Euler angles (BVH channels) to scalar-last quaternions, vectorised.

    Args:
        order: three axes, e.g. ``"ZXY"`` (intrinsic, as scipy's upper-case orders).
        angles_deg: (..., 3) degrees, in ``order``.
    Returns:
        (..., 4) unit quaternions, the rotations ``Rotation.from_euler(order, angles, degrees=True)``.
    """
    half = np.radians(np.asarray(angles_deg, dtype=np.float64)) / 2.0
    q = None
    for i, axis in enumerate(order.lower()):
        e = np.zeros(half.shape[:-1] + (4,))
        e[..., "xyz".index(axis)] = np.sin(half[..., i])
        e[..., 3] = np.cos(half[..., i])
        q = e if q is None else quaternion_multiply(q, e)  # intrinsic: later axes in the moved frame
    return q


def slerp(q0: np.ndarray, q1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions along the shorter arc.

    Args:
        q0, q1: (..., 4) unit quaternions (any convention; the scalar's place does not matter).
        w: (...,) weights in [0, 1] (0 gives ``q0``), broadcast against ``q0[..., 0]``.
    Returns:
        (..., 4) unit quaternions; the rotation of ``scipy``'s ``Slerp`` at the same weight.
    """
    d = np.sum(q0 * q1, axis=-1)
    q1 = np.where((d < 0)[..., None], -q1, q1)  # q and -q are one rotation: take the short way
    d = np.clip(np.abs(d), -1.0, 1.0)
    theta = np.arccos(d)
    s = np.sin(theta)
    small = s < 1e-9
    s_safe = np.where(small, 1.0, s)
    a = np.where(small, 1.0 - w, np.sin((1.0 - w) * theta) / s_safe)
    b = np.where(small, w, np.sin(w * theta) / s_safe)
    q = a[..., None] * q0 + b[..., None] * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _resample_plan(num_frames: int, frame_time: float, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Resampling ``num_frames`` frames from ``1/frame_time`` to ``fps`` frames per second (times
    ``0, 1/fps, ...`` within the clip): output frame ``k`` lies between source frames ``i0[k]`` and
    ``i0[k] + 1`` at weight ``w[k]`` in [0, 1) (exact source frames have ``w = 0``)."""
    if not fps > 0:
        raise InputError(f"fps must be positive, got {fps}")
    F = num_frames
    n = int(math.floor((F - 1) * frame_time * fps + 1e-6)) + 1
    if F == 1:
        return np.zeros(1, np.int64), np.zeros(1)
    x = np.minimum(np.arange(n) / fps, (F - 1) * frame_time) / frame_time  # fractional source frame
    x = np.where(np.abs(x - np.round(x)) < 1e-9, np.round(x), x)  # exact source frames stay exact
    i0 = np.minimum(np.floor(x).astype(np.int64), F - 2)
    w = x - i0
    return i0, w


_TOKEN = re.compile(r"\S+")


def read_bvh(path: str | os.PathLike) -> BVH:
    """Parse a BVH file (hierarchy and motion).

    Raises:
        InputError: missing file, or a malformed hierarchy / motion section (names the file and why).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such BVH file")
    text = path.read_text(errors="replace")
    head, sep, motion_text = text.partition("MOTION")
    if not sep or "HIERARCHY" not in head:
        raise InputError(f"{path}: not a BVH file (needs HIERARCHY and MOTION sections)")
    tokens = _TOKEN.findall(head.split("HIERARCHY", 1)[1])
    joints: list[BVHJoint] = []
    stack: list[int] = []  # open joint indices; -2 marks an End Site block
    n_channels = 0
    i = 0
    pending: tuple[str, int] | None = None
    try:
        while i < len(tokens):
            tok = tokens[i]
            if tok in ("ROOT", "JOINT"):
                parent = stack[-1] if stack else -1
                if tok == "ROOT" and stack:
                    raise ValueError("ROOT inside another joint")
                pending = (tokens[i + 1], parent)
                i += 2
            elif tok == "End":  # "End Site"
                pending = ("__end__", stack[-1])
                i += 2
            elif tok == "{":
                if pending is None:
                    raise ValueError("'{' without a joint")
                name, parent = pending
                if name == "__end__":
                    stack.append(-2 - parent)  # encode the owner of the end site
                else:
                    joints.append(BVHJoint(name, parent, np.zeros(3), [], n_channels))
                    stack.append(len(joints) - 1)
                pending = None
                i += 1
            elif tok == "}":
                stack.pop()
                i += 1
            elif tok == "OFFSET":
                off = np.array([float(x) for x in tokens[i + 1 : i + 4]])
                top = stack[-1]
                if top <= -2:
                    joints[-2 - top].end_site = off
                else:
                    joints[top].offset = off
                i += 4
            elif tok == "CHANNELS":
                n = int(tokens[i + 1])
                chans = tokens[i + 2 : i + 2 + n]
                bad = [c for c in chans if c.lower() not in _POS_CHANNELS and c.lower() not in _ROT_CHANNELS]
                if bad:
                    raise ValueError(f"unknown channel {bad[0]!r}")
                j = joints[stack[-1]]
                j.channels, j.channel_start = list(chans), n_channels
                n_channels += n
                i += 2 + n
            else:
                raise ValueError(f"unexpected token {tok!r}")
    except (ValueError, IndexError) as e:
        raise InputError(f"{path}: malformed BVH hierarchy ({e})") from None
    if not joints or stack:
        raise InputError(f"{path}: malformed BVH hierarchy (no joints or unbalanced braces)")

    m = re.search(r"Frames:\s*(\d+)\s*Frame Time:\s*([0-9.eE+-]+)", motion_text)
    if not m:
        raise InputError(f"{path}: MOTION section lacks 'Frames:' / 'Frame Time:'")
    frames, frame_time = int(m.group(1)), float(m.group(2))
    try:
        values = np.fromstring(motion_text[m.end() :], sep=" ")  # any whitespace; raises on bad data
    except ValueError as e:
        raise InputError(f"{path}: non-numeric motion data ({e})") from None
    if frames < 1 or values.size < frames * n_channels or frame_time <= 0:
        raise InputError(
            f"{path}: motion has {values.size} values, expected {frames} frames x {n_channels} channels"
        )
    motion = values[: frames * n_channels].reshape(frames, n_channels)
    return BVH(joints, motion, frame_time, path)


@dataclass
class Motion:
    """A motion capture clip as Human3.6M-17 poses.

    Attributes:
        poses: (F, 17, 3) float64 joint positions, mm, world z-up, H36M order.
        fps: frames per second.
        name: clip name (the file stem).
        skeleton: source skeleton, ``"bandai"`` or ``"cmu"``.
    """

    poses: np.ndarray
    fps: float
    name: str
    skeleton: str

    @property
    def num_frames(self) -> int:
        return self.poses.shape[0]


def detect_skeleton(joint_names: list[str], source: str = "BVH") -> str:
    """Name of the mocap skeleton (a key of :data:`epipolarpose.skeleton.MOCAP_MAPPINGS`) whose
    joints all occur in ``joint_names``; :class:`InputError` naming the missing joints otherwise."""
    present = set(joint_names)
    missing = {k: [n for n in m.source_joints if n not in present] for k, m in MOCAP_MAPPINGS.items()}
    for k, miss in missing.items():
        if not miss:
            return k
    best = min(missing, key=lambda k: len(missing[k]))
    raise InputError(
        f"{source}: unknown skeleton (known: {', '.join(MOCAP_MAPPINGS)}); closest is {best!r}, "
        f"which lacks joints {', '.join(missing[best])}"
    )


def load_mocap(
    path: str | os.PathLike,
    fps: float | None = None,
    center: bool = True,
    units: str | None = None,
) -> Motion:
    """Load a Bandai-Namco or CMU BVH as Human3.6M-17 poses in mm, world z-up.

    Args:
        path: the BVH file.
        fps: resample to this frame rate (slerp of joint rotations); None keeps the file's rate.
        center: subtract the clip's mean root x and y (z is kept so feet stay on the floor).
        units: file units (``mm``, ``cm``, ``m``, ``inch``); None guesses the decimal unit from the
            thigh length (a thigh is ~0.42 m), which gives cm for Bandai and m for CMU's "scaled"
            release.
    Returns:
        :class:`Motion` with ``poses`` (F, 17, 3) float64.
    Raises:
        InputError: missing/malformed file, or a skeleton that is neither Bandai nor CMU (the
            message names the missing joints).
    """
    bvh = read_bvh(path)
    skel = detect_skeleton(bvh.joint_names, str(path))
    mapping = MOCAP_MAPPINGS[skel]
    pos = bvh.forward_kinematics(fps=fps)
    names = bvh.joint_names
    src = pos[:, [names.index(n) for n in mapping.source_joints]]
    if units is None:
        a, b = (names.index(n) for n in _THIGH[skel])
        thigh = float(np.median(np.linalg.norm(pos[:, a] - pos[:, b], axis=-1)))
        decades = {k: v for k, v in UNITS_MM.items() if k != "inch"}
        units = min(decades, key=lambda k: abs(math.log10(max(thigh, 1e-12) * decades[k] / _THIGH_MM)))
    if units not in UNITS_MM:
        raise InputError(f"unknown units {units!r} (use one of {', '.join(UNITS_MM)})")
    poses = mapping.apply(src) * UNITS_MM[units]
    head = pos[:, names.index(HEAD_JOINT[skel])] * UNITS_MM[units]
    poses[:, 10] = synthesize_head_top(poses[:, 8], head)
    poses = np.stack([poses[..., 0], -poses[..., 2], poses[..., 1]], -1)  # y-up -> z-up
    if center:
        poses[..., :2] -= poses[:, 0, :2].mean(0)
    return Motion(poses, float(fps) if fps is not None else bvh.fps, Path(path).stem, skel)


# --- the train/test split -------------------------------------------------------------------

#: Fraction of every motion group's clips that goes to the test split.
TEST_FRACTION = 0.2


def clip_group(path: str | os.PathLike) -> str:
    """The motion type a clip belongs to, used to stratify the split.

    Bandai ``dataset-1_walk_normal_001`` -> ``dataset-1/walk`` (dataset and content, any style);
    CMU ``131_01`` -> ``cmu/131`` (subject); anything else -> its folder name.
    """
    p = Path(path)
    parts = p.stem.split("_")
    if parts[0].startswith("dataset-") and len(parts) >= 3:
        return f"{parts[0]}/{parts[1]}"
    if re.fullmatch(r"\d+_\d+", p.stem):
        return f"cmu/{parts[0]}"
    return p.parent.name


def _clip_hash(path: Path) -> str:
    return hashlib.sha1(path.stem.encode()).hexdigest()


def clip_split(paths: list[str | os.PathLike]) -> dict[str, list[Path]]:
    """Deterministic train/test split *by clip* (never by frame), stratified by motion type.

    Clips are grouped by :func:`clip_group` (dataset + content, e.g. every style of Bandai's
    ``walk``). Within a group, clips are ordered by the SHA-1 of their file stem and the first
    ``max(1, round(TEST_FRACTION * n))`` go to ``test`` when the group has at least 2 clips (a
    single-clip group goes to ``train``). So both halves contain every motion type that has more
    than one clip, and the assignment of a clip never depends on which other groups are present.

    Returns:
        ``{"train": [...], "test": [...]}``, each sorted by path.
    """
    groups: dict[str, list[Path]] = {}
    for p in map(Path, paths):
        groups.setdefault(clip_group(p), []).append(p)
    out: dict[str, list[Path]] = {"train": [], "test": []}
    for clips in groups.values():
        clips = sorted(set(clips), key=lambda p: (_clip_hash(p), str(p)))
        n_test = max(1, round(TEST_FRACTION * len(clips))) if len(clips) >= 2 else 0
        out["test"] += clips[:n_test]
        out["train"] += clips[n_test:]
    return {k: sorted(v) for k, v in out.items()}


def list_shared_clips(shared_dir: str | os.PathLike, split: str | None = None) -> list[Path]:
    """The BVH clips under ``shared_dir/data/mocap`` (or ``shared_dir`` itself if it has no
    ``data/mocap``), sorted; ``split`` = ``"train"`` / ``"test"`` selects one half of
    :func:`clip_split`, None returns all."""
    root = Path(shared_dir)
    if (root / "data" / "mocap").is_dir():
        root = root / "data" / "mocap"
    if not root.is_dir():
        raise InputError(f"{shared_dir}: no such folder")
    clips = sorted(root.rglob("*.bvh"))
    if split is None:
        return clips
    if split not in ("train", "test"):
        raise InputError(f"split must be 'train', 'test' or None, got {split!r}")
    return clip_split(clips)[split]


def load_clips(
    paths: list[str | os.PathLike], fps: float | None = None, center: bool = True, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, float]:
    """Load several BVH clips (see :func:`load_mocap`) and concatenate them in time.

    Args:
        paths: BVH files.
        fps: common frame rate; None requires every clip to have the same rate.
        center: centre each clip on the origin.
        progress: show a progress bar on stderr.
    Returns:
        ``(poses, clip, fps)``: (F, 17, 3) mm, (F,) clip name of every frame, the frame rate.
    """
    if not paths:
        raise InputError("no BVH files given")
    it = tqdm(paths, desc="loading BVH", unit="clip", disable=not progress or None)
    motions = [load_mocap(p, fps=fps, center=center) for p in it]
    rates = {m.fps for m in motions}
    if len(rates) > 1:
        raise InputError(f"clips have different frame rates ({sorted(rates)}); pass a common fps")
    poses = np.concatenate([m.poses for m in motions])
    clip = np.concatenate([np.full(m.num_frames, m.name) for m in motions])
    return poses, clip, motions[0].fps


def expand_bvh_paths(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files and folders (searched recursively for ``*.bvh``) -> sorted BVH file list."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob("*.bvh"))
            if not found:
                raise InputError(f"no .bvh files under {p}")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"motion capture path {p} does not exist")
    if not out:
        raise InputError("no motion capture given")
    return out


def load_mocap_poses(
    paths: Sequence[str | os.PathLike], fps: float | None = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """Load BVH files/folders (:func:`expand_bvh_paths`) with :func:`load_clips`.

    Returns:
        ``(poses (N, 17, 3) mm world z-up, clip name per pose (N,))``. ``fps`` resamples every clip
        (consecutive mocap frames are nearly identical; 10 fps keeps the variety, not the bulk).
    """
    poses, clip, _ = load_clips(expand_bvh_paths(paths), fps=fps)
    return poses, clip
