"""The Human3.6M 17-joint skeleton and mappings into it from other joint sets.

Every array of poses in epipolarpose uses the Human3.6M 17-joint order below unless a file says
otherwise (`joint_names`). Joint 0 (``Hip``, the pelvis) is the root.

Mappings from other skeletons are described as *recipes*: for every Human3.6M joint, a list of
``(source_joint, weight)`` pairs whose weighted sum gives the joint. This covers joints that
exist in the source (one pair, weight 1) and joints derived as midpoints (e.g. the pelvis of
COCO-17 is the mean of both hips). The head top of motion capture skeletons is not a recipe but
is synthesised by :func:`synthesize_head_top`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import InputError

H36M_JOINTS: tuple[str, ...] = (
    "Hip",  # 0 pelvis, root
    "RHip",  # 1
    "RKnee",  # 2
    "RFoot",  # 3 ankle
    "LHip",  # 4
    "LKnee",  # 5
    "LFoot",  # 6 ankle
    "Spine",  # 7
    "Thorax",  # 8
    "Neck/Nose",  # 9
    "Head",  # 10 head top
    "LShoulder",  # 11
    "LElbow",  # 12
    "LWrist",  # 13
    "RShoulder",  # 14
    "RElbow",  # 15
    "RWrist",  # 16
)
NUM_JOINTS = len(H36M_JOINTS)
ROOT = 0

#: Parent of every joint (-1 for the root).
PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15], dtype=np.int64)

#: Bones as (parent, child) pairs, shape (16, 2).
BONES = np.array([(int(p), j) for j, p in enumerate(PARENTS) if p >= 0], dtype=np.int64)

#: Limb bones (parent, child) whose depth a monocular network can flip: R/L upper arm, forearm,
#: thigh, shin, shape (8, 2); names in :data:`LIMB_BONE_NAMES`.
LIMB_BONES = np.array(
    [(14, 15), (15, 16), (11, 12), (12, 13), (1, 2), (2, 3), (4, 5), (5, 6)], dtype=np.int64
)
LIMB_BONE_NAMES: tuple[str, ...] = (
    "RUpperArm",
    "RForearm",
    "LUpperArm",
    "LForearm",
    "RThigh",
    "RShin",
    "LThigh",
    "LShin",
)

#: Left/right joint pairs (left, right).
LEFT_RIGHT_PAIRS: tuple[tuple[int, int], ...] = ((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16))
LEFT_JOINTS = np.array([left for left, _ in LEFT_RIGHT_PAIRS], dtype=np.int64)
RIGHT_JOINTS = np.array([right for _, right in LEFT_RIGHT_PAIRS], dtype=np.int64)

#: Permutation that swaps left and right joints: ``pose[..., FLIP_PERMUTATION, :]`` is the
#: same pose with left and right labels exchanged (use with a mirrored image for flip augmentation).
FLIP_PERMUTATION = np.arange(NUM_JOINTS)
for _left, _right in LEFT_RIGHT_PAIRS:
    FLIP_PERMUTATION[_left], FLIP_PERMUTATION[_right] = _right, _left
del _left, _right

#: Side of every joint: "l" left, "r" right, "c" centre (for colouring drawings).
JOINT_SIDE = np.array(["c"] * NUM_JOINTS)
JOINT_SIDE[LEFT_JOINTS] = "l"
JOINT_SIDE[RIGHT_JOINTS] = "r"

#: Distance (mm) by which the synthesised head top lies beyond the head joint of a mocap skeleton.
HEAD_TOP_OFFSET_MM = 120.0


def _mirror_name(name: str) -> str | None:
    """The right-side name of a left-side joint name, or None: ``left_x``, ``x_left`` (BlazePose,
    COCO), ``LeftX`` (CMU) and ``LX`` (Human3.6M, OpenPose BODY_25)."""
    for left, right in (("left_", "right_"), ("Left", "Right")):
        if name.startswith(left):
            return right + name[len(left) :]
    if name.endswith("_left"):
        return name[: -len("_left")] + "_right"
    if len(name) > 1 and name[0] == "L" and name[1].isupper():
        return "R" + name[1:]
    return None


def left_right_pairs(joint_names: Sequence[str]) -> np.ndarray:
    """Left/right joint pairs ``(left, right)`` of any joint list, found by name (see
    :func:`_mirror_name`): (P, 2) int. For Human3.6M-17 these are :data:`LEFT_RIGHT_PAIRS`."""
    index = {n: i for i, n in enumerate(joint_names)}
    pairs = [(i, index[r]) for n, i in index.items() if (r := _mirror_name(n)) is not None and r in index]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def flip_permutation(left_right: np.ndarray, num_joints: int) -> np.ndarray:
    """(J,) permutation exchanging the joints of (P, 2) left/right pairs (:data:`FLIP_PERMUTATION`
    for Human3.6M)."""
    perm = np.arange(num_joints)
    left_right = np.asarray(left_right, dtype=np.int64).reshape(-1, 2)
    perm[left_right[:, 0]], perm[left_right[:, 1]] = left_right[:, 1], left_right[:, 0]
    return perm


#: Bones (lower, upper) whose median lengths add up to the ankle-to-head-top height: each leg
#: (ankle-knee, knee-hip; the two legs are averaged) and the trunk (pelvis-spine, spine-thorax,
#: thorax-neck/nose, neck/nose-head top); hip-pelvis is horizontal and skipped.
HEIGHT_CHAIN_RIGHT_LEG: tuple[tuple[int, int], ...] = ((3, 2), (2, 1))
HEIGHT_CHAIN_LEFT_LEG: tuple[tuple[int, int], ...] = ((6, 5), (5, 4))
HEIGHT_CHAIN_TRUNK: tuple[tuple[int, int], ...] = ((0, 7), (7, 8), (8, 9), (9, 10))
#: The foot below the ankle, as a fraction of the ankle-to-head-top height.
FOOT_HEIGHT_FRACTION = 0.045


def body_height(poses: np.ndarray) -> float:
    """Standing height estimated from median bone lengths of (F, 17, 3) poses: mean leg length
    (ankle-knee-hip) + pelvis-spine-thorax-neck-head-top chain. Ignores the foot below the ankle
    (~5 % of the height) — it approximates the *ankle-to-head-top* height."""
    poses = np.asarray(poses, dtype=np.float64)

    def med(pairs: tuple[tuple[int, int], ...]) -> float:
        return float(sum(np.nanmedian(np.linalg.norm(poses[:, a] - poses[:, b], axis=-1)) for a, b in pairs))

    legs = 0.5 * (med(HEIGHT_CHAIN_RIGHT_LEG) + med(HEIGHT_CHAIN_LEFT_LEG))
    return legs + med(HEIGHT_CHAIN_TRUNK)


def metric_scale(poses: np.ndarray, subject_height_mm: float) -> float:
    """Scale factor turning arbitrary-unit poses (F, 17, 3) into mm given the subject's height.

    The height is compared with :func:`body_height` (ankle to head top) plus
    :data:`FOOT_HEIGHT_FRACTION` for the foot.
    """
    if not subject_height_mm or subject_height_mm <= 0:
        raise InputError(f"subject height must be a positive number of mm, got {subject_height_mm}")
    if poses.shape[-2] != NUM_JOINTS:
        raise InputError("--subject-height needs the Human3.6M 17-joint skeleton")
    h = body_height(poses) * (1 + FOOT_HEIGHT_FRACTION)
    if not np.isfinite(h) or h <= 0:
        raise InputError("cannot measure the subject's height: too few triangulated joints")
    return float(subject_height_mm / h)


@dataclass(frozen=True)
class JointMapping:
    """How to build the 17 Human3.6M joints from a source skeleton.

    ``recipe[j]`` lists ``(source_name, weight)`` pairs summed to give H36M joint ``j``; an empty
    list means the joint is synthesised elsewhere (the head top of mocap skeletons).
    """

    name: str
    source_joints: tuple[str, ...]
    recipe: tuple[tuple[tuple[str, float], ...], ...]

    def matrix(self) -> np.ndarray:
        """Mixing matrix ``M`` of shape (17, S): ``h36m = M @ source`` for source joints in
        ``source_joints`` order. Rows of synthesised joints are zero."""
        index = {n: i for i, n in enumerate(self.source_joints)}
        m = np.zeros((NUM_JOINTS, len(self.source_joints)))
        for j, parts in enumerate(self.recipe):
            for name, w in parts:
                m[j, index[name]] += w
        return m

    def apply(self, source: np.ndarray) -> np.ndarray:
        """Map source joints to Human3.6M order.

        Args:
            source: (..., S, D) joints in ``source_joints`` order (D = 2 or 3).
        Returns:
            (..., 17, D); NaN where a recipe is empty or a source joint is NaN.
        """
        source = np.asarray(source, dtype=np.float64)
        if source.shape[-2] != len(self.source_joints):
            raise ValueError(
                f"{self.name} mapping expects {len(self.source_joints)} joints, got {source.shape[-2]}"
            )
        out = np.full(source.shape[:-2] + (NUM_JOINTS, source.shape[-1]), np.nan)
        index = {n: i for i, n in enumerate(self.source_joints)}
        for j, parts in enumerate(self.recipe):
            if parts:
                out[..., j, :] = sum(w * source[..., index[n], :] for n, w in parts)
        return out

    def apply_scores(self, scores: np.ndarray) -> np.ndarray:
        """Map per-joint confidences (..., S) -> (..., 17): a derived joint takes the minimum of
        its parts' scores; synthesised joints take 0."""
        scores = np.asarray(scores, dtype=np.float64)
        index = {n: i for i, n in enumerate(self.source_joints)}
        out = np.zeros(scores.shape[:-1] + (NUM_JOINTS,))
        for j, parts in enumerate(self.recipe):
            if parts:
                out[..., j] = np.min(np.stack([scores[..., index[n]] for n, _ in parts], -1), -1)
        return out


def _direct(names: list[str | None]) -> tuple[tuple[tuple[str, float], ...], ...]:
    return tuple(((n, 1.0),) if n is not None else () for n in names)


COCO17_JOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)


def _coco_like_recipe(nose: str, head: tuple[str, ...], prefix: str = "") -> tuple:
    """Recipe shared by COCO-17 and BlazePose-33, whose body joints have the same names.

    Pelvis = mean of hips; thorax = mean of shoulders; spine = mean of pelvis and thorax;
    Neck/Nose = nose; Head = mean of ``head`` joints (ears/eyes: the centre of the head, which
    sits below the true head top — a known bias of every 2D detector mapped to H36M).
    """
    hips = ((f"{prefix}left_hip", 0.5), (f"{prefix}right_hip", 0.5))
    shoulders = ((f"{prefix}left_shoulder", 0.5), (f"{prefix}right_shoulder", 0.5))
    spine = tuple((n, w / 2) for n, w in hips + shoulders)
    return (
        hips,
        ((f"{prefix}right_hip", 1.0),),
        ((f"{prefix}right_knee", 1.0),),
        ((f"{prefix}right_ankle", 1.0),),
        ((f"{prefix}left_hip", 1.0),),
        ((f"{prefix}left_knee", 1.0),),
        ((f"{prefix}left_ankle", 1.0),),
        spine,
        shoulders,
        ((nose, 1.0),),
        tuple((n, 1.0 / len(head)) for n in head),
        ((f"{prefix}left_shoulder", 1.0),),
        ((f"{prefix}left_elbow", 1.0),),
        ((f"{prefix}left_wrist", 1.0),),
        ((f"{prefix}right_shoulder", 1.0),),
        ((f"{prefix}right_elbow", 1.0),),
        ((f"{prefix}right_wrist", 1.0),),
    )


COCO17 = JointMapping(
    name="coco17",
    source_joints=COCO17_JOINTS,
    recipe=_coco_like_recipe("nose", ("left_ear", "right_ear")),
)

BLAZEPOSE33_JOINTS: tuple[str, ...] = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)

BLAZEPOSE33 = JointMapping(
    name="blazepose33",
    source_joints=BLAZEPOSE33_JOINTS,
    recipe=_coco_like_recipe("nose", ("left_ear", "right_ear")),
)

BANDAI_JOINTS: tuple[str, ...] = (
    "Hips",
    "UpperLeg_R",
    "LowerLeg_R",
    "Foot_R",
    "UpperLeg_L",
    "LowerLeg_L",
    "Foot_L",
    "Chest",
    "Neck",
    "Head",
    "UpperArm_L",
    "LowerArm_L",
    "Hand_L",
    "UpperArm_R",
    "LowerArm_R",
    "Hand_R",
)

#: Bandai-Namco BVH -> H36M. The head top (joint 10) is synthesised.
BANDAI = JointMapping(
    name="bandai",
    source_joints=BANDAI_JOINTS,
    recipe=_direct(
        [
            "Hips",
            "UpperLeg_R",
            "LowerLeg_R",
            "Foot_R",
            "UpperLeg_L",
            "LowerLeg_L",
            "Foot_L",
            "Chest",
            "Neck",
            "Head",
            None,
            "UpperArm_L",
            "LowerArm_L",
            "Hand_L",
            "UpperArm_R",
            "LowerArm_R",
            "Hand_R",
        ]
    ),
)

CMU_JOINTS: tuple[str, ...] = (
    "Hips",
    "RightHip",
    "RightKnee",
    "RightAnkle",
    "LeftHip",
    "LeftKnee",
    "LeftAnkle",
    "Chest",
    "lowerneck",
    "Neck",
    "Head",
    "LeftShoulder",
    "LeftElbow",
    "LeftWrist",
    "RightShoulder",
    "RightElbow",
    "RightWrist",
)

#: CMU BVH -> H36M. The head top (joint 10) is synthesised (from CMU's ``Head`` joint, which is
#: listed in ``source_joints`` so that the synthesis can find it).
CMU = JointMapping(
    name="cmu",
    source_joints=CMU_JOINTS,
    recipe=_direct(
        [
            "Hips",
            "RightHip",
            "RightKnee",
            "RightAnkle",
            "LeftHip",
            "LeftKnee",
            "LeftAnkle",
            "Chest",
            "lowerneck",
            "Neck",
            None,
            "LeftShoulder",
            "LeftElbow",
            "LeftWrist",
            "RightShoulder",
            "RightElbow",
            "RightWrist",
        ]
    ),
)

MOCAP_MAPPINGS: dict[str, JointMapping] = {"bandai": BANDAI, "cmu": CMU}


def synthesize_head_top(
    thorax: np.ndarray, head: np.ndarray, offset: float = HEAD_TOP_OFFSET_MM
) -> np.ndarray:
    """Head top placed ``offset`` (same units as the inputs, default 120 mm) beyond ``head`` along
    the thorax -> head direction.

    Args:
        thorax: (..., 3) thorax positions.
        head: (..., 3) head joint positions of the mocap skeleton.
    Returns:
        (..., 3) head-top positions.
    """
    d = head - thorax
    n = np.linalg.norm(d, axis=-1, keepdims=True)
    return head + offset * d / np.maximum(n, 1e-9)


def root_relative(poses: np.ndarray) -> np.ndarray:
    """Subtract the root joint: (..., J, D) -> (..., J, D)."""
    return poses - poses[..., ROOT : ROOT + 1, :]


def bone_lengths(poses: np.ndarray) -> np.ndarray:
    """Lengths of the 16 bones: (..., 17, 3) -> (..., 16)."""
    return np.linalg.norm(poses[..., BONES[:, 1], :] - poses[..., BONES[:, 0], :], axis=-1)


def flip_pose(poses: np.ndarray, axis: int = 0) -> np.ndarray:
    """Mirror poses along coordinate ``axis`` and exchange left/right labels, (..., 17, D)."""
    out = np.array(poses, copy=True)[..., FLIP_PERMUTATION, :]
    out[..., axis] = -out[..., axis]
    return out


def default_joint_names(num_joints: int) -> list[str]:
    """Joint names of a pose array without its own: the Human3.6M names for 17 joints,
    ``joint0, joint1, ...`` otherwise."""
    if num_joints == NUM_JOINTS:
        return list(H36M_JOINTS)
    return [f"joint{i}" for i in range(num_joints)]
