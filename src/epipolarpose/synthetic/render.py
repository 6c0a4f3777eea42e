"""Render the person seen by a camera from motion capture, cropped as EpipolarPose crops.

The body is a set of shaded capsules (limbs, spine, neck) and a head, drawn with OpenCV directly in
the coordinates of the crop (rendering the full frame and cropping gives the same pixels, only
slower). Parts are drawn far-to-near (painter's algorithm) so nearer limbs occlude farther ones;
left parts are blue/cyan, right parts red/orange and central parts green/grey, so left and right
are distinguishable. Backgrounds (gradients, low-frequency noise, random shapes), lighting, pixel
noise and random occluders make the domain less trivial.

Lens distortion: joints are projected *with* the camera's distortion, so the 2D labels are exactly
the pixels where the joints are drawn; a capsule between two joints is drawn straight between the
distorted endpoints (the bending of a 40 cm limb by real lens distortion is well under a pixel of
the crop).

The crop (the paper's): a square box centred on the projected joints' bounding box, with side
``margin`` times its longer side, resized to ``size`` pixels. Its 2x3 affine ``A`` maps image
pixels to crop pixels (``crop = A @ [u, v, 1]``); :func:`invert_affine` maps back.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..camera import Camera
from ..skeleton import BONES

#: Capsule radius (mm) of every bone in :data:`~epipolarpose.skeleton.BONES` order.
BONE_RADII_MM = np.array(
    [
        70.0,  # Hip-RHip
        65.0,  # RHip-RKnee
        50.0,  # RKnee-RFoot
        70.0,  # Hip-LHip
        65.0,  # LHip-LKnee
        50.0,  # LKnee-LFoot
        115.0,  # Hip-Spine
        125.0,  # Spine-Thorax
        50.0,  # Thorax-Neck/Nose
        0.0,  # Neck/Nose-Head: the head ellipse is drawn instead
        60.0,  # Thorax-LShoulder
        45.0,  # LShoulder-LElbow
        38.0,  # LElbow-LWrist
        60.0,  # Thorax-RShoulder
        45.0,  # RShoulder-RElbow
        38.0,  # RElbow-RWrist
    ]
)
HEAD_RADIUS_MM = 105.0
#: Limb (cloth) group of every bone: right leg, left leg, trunk, head, left arm, right arm.
PART_GROUP = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 4, 4, 4, 5, 5, 5])
HEAD_BONE = 9  # index in BONES of (Neck/Nose, Head)

# Base colours (RGB) per bone: left cool (blue/cyan), right warm (red/orange), centre green/grey.
_LEFT_ARM, _LEFT_LEG = (40, 90, 230), (40, 180, 220)
_RIGHT_ARM, _RIGHT_LEG = (230, 50, 40), (235, 150, 40)
_CENTRE, _HEAD = (70, 170, 80), (200, 190, 170)
BONE_COLORS = np.array(
    [
        _RIGHT_LEG,
        _RIGHT_LEG,
        _RIGHT_LEG,
        _LEFT_LEG,
        _LEFT_LEG,
        _LEFT_LEG,
        _CENTRE,
        _CENTRE,
        _CENTRE,
        _HEAD,
        _LEFT_ARM,
        _LEFT_ARM,
        _LEFT_ARM,
        _RIGHT_ARM,
        _RIGHT_ARM,
        _RIGHT_ARM,
    ],
    dtype=np.float64,
)


@dataclass(frozen=True)
class RenderConfig:
    """How to render and crop.

    Attributes:
        size: side of the square crop in pixels (the network input).
        margin: crop side / longer side of the joints' bounding box.
        background: random backgrounds (False: black, for tests).
        occluder_prob: probability of drawing a random occluder over the person.
        augment: jitter crop centre/scale and colours (training); False keeps the crop exact.
        scale_jitter: relative crop-scale jitter (uniform ±) when ``augment``.
        shift_jitter: crop-centre jitter as a fraction of the crop side when ``augment``.
        noise: maximum std of additive pixel noise (grey levels).
    """

    size: int = 128
    margin: float = 1.3
    background: bool = True
    occluder_prob: float = 0.3
    augment: bool = True
    scale_jitter: float = 0.1
    shift_jitter: float = 0.05
    noise: float = 6.0


@dataclass
class RenderedView:
    """One rendered, cropped view.

    Attributes:
        image: (S, S, 3) uint8 RGB crop.
        affine: (2, 3) image pixels -> crop pixels.
        keypoints: (J, 2) joints in crop pixels (distorted projection mapped by ``affine``).
        depth: (J,) camera-frame depth of every joint (rig units).
        mask: (S, S) bool silhouette of the person (before occluders).
    """

    image: np.ndarray
    affine: np.ndarray
    keypoints: np.ndarray
    depth: np.ndarray
    mask: np.ndarray


def apply_affine(A: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map points with 2x3 affines: A (..., 2, 3), pts (..., N, 2) -> (..., N, 2)."""
    A = np.asarray(A, dtype=np.float64)
    return np.einsum("...ij,...nj->...ni", A[..., :2], pts) + A[..., None, :, 2]


def invert_affine(A: np.ndarray) -> np.ndarray:
    """Inverse of 2x3 affines, (..., 2, 3) -> (..., 2, 3)."""
    A = np.asarray(A, dtype=np.float64)
    Minv = np.linalg.inv(A[..., :2])
    return np.concatenate([Minv, -(Minv @ A[..., 2:])], axis=-1)


def affine_scale(A: np.ndarray) -> np.ndarray:
    """Isotropic scale of 2x3 affines (crop px per image px), (..., 2, 3) -> (...)."""
    return np.sqrt(np.abs(np.linalg.det(np.asarray(A, dtype=np.float64)[..., :2])))


def crop_affine(
    keypoints: np.ndarray,
    size: int,
    margin: float = 1.3,
    scale_jitter: np.ndarray | float = 0.0,
    shift: np.ndarray | None = None,
) -> np.ndarray:
    """The paper's square person crop around projected joints.

    Args:
        keypoints: (..., J, 2) image pixels (NaNs ignored).
        size: crop side in pixels.
        margin: crop side / longer side of the joints' bounding box.
        scale_jitter: (...) or scalar multiplicative change of the box side is ``1 + scale_jitter``.
        shift: (..., 2) centre shift as a fraction of the box side, or None.
    Returns:
        (..., 2, 3) affines mapping image pixels to crop pixels.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    lo, hi = np.nanmin(kp, axis=-2), np.nanmax(kp, axis=-2)
    centre = 0.5 * (lo + hi)
    side = margin * np.max(hi - lo, axis=-1) * (1.0 + np.asarray(scale_jitter, dtype=np.float64))
    side = np.maximum(side, 1e-6)
    if shift is not None:
        centre = centre + np.asarray(shift) * side[..., None]
    s = size / side
    A = np.zeros(kp.shape[:-2] + (2, 3))
    A[..., 0, 0] = A[..., 1, 1] = s
    A[..., :, 2] = size / 2.0 - s[..., None] * centre
    return A


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Random background (S, S, 3) uint8: gradient or low-frequency noise, plus random shapes."""
    kind = rng.integers(3)
    if kind == 0:  # linear gradient between two colours
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        ang = rng.uniform(0, 2 * np.pi)
        g = np.linspace(-1, 1, size)
        ramp = 0.5 + 0.5 * (np.cos(ang) * g[None, :] + np.sin(ang) * g[:, None]) / np.sqrt(2)
        img = c0 + ramp[..., None] * (c1 - c0)
    else:  # low-frequency colour noise
        n = int(rng.integers(2, 9))
        small = rng.uniform(0, 255, (n, n, 3)).astype(np.float32)
        img = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 8))):
        _random_shape(img, rng, size, max_frac=0.5)
    return img


def _random_shape(
    img: np.ndarray, rng: np.random.Generator, size: int, max_frac: float, centre: np.ndarray | None = None
) -> None:
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    c = rng.uniform(0, size, 2) if centre is None else centre
    r = rng.uniform(0.05, max_frac) * size / 2
    kind = rng.integers(3)
    if kind == 0:
        axes = (max(1, int(r)), max(1, int(r * rng.uniform(0.3, 1.0))))
        cv2.ellipse(img, (int(c[0]), int(c[1])), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    elif kind == 1:
        w, h = r * rng.uniform(0.3, 1.0, 2)
        box = ((float(c[0]), float(c[1])), (float(2 * w), float(2 * h)), float(rng.uniform(0, 180)))
        cv2.fillConvexPoly(img, cv2.boxPoints(box).astype(np.int32), colour)
    else:
        p = (c + rng.uniform(-r, r, 2)).astype(int)
        cv2.line(img, (int(c[0]), int(c[1])), (int(p[0]), int(p[1])), colour, max(1, int(r / 6)))


_SHIFT = 4  # fixed-point bits for sub-pixel drawing
_ONE = 1 << _SHIFT


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(p[0] * _ONE)), int(round(p[1] * _ONE))


@dataclass(frozen=True)
class Appearance:
    """How the drawn person looks (:func:`draw_person`).

    Attributes:
        colour_gain: (16, 3) per-part colour multipliers (clothing variation), default 1.
        light_dir: (2,) unit image-plane direction the light comes from (highlights), default up-left.
    """

    colour_gain: np.ndarray | None = None
    light_dir: np.ndarray | None = None


def draw_person(
    image: np.ndarray,
    uv: np.ndarray,
    depth: np.ndarray,
    focal: float,
    *,
    appearance: Appearance = Appearance(),
    mask: np.ndarray | None = None,
) -> None:
    """Draw the capsule person into ``image`` in place (far parts first).

    Args:
        image: (H, W, 3) uint8 RGB.
        uv: (17, 2) joints in the image's pixels.
        depth: (17,) camera depth of every joint (mm).
        focal: focal length in the image's pixels (radius_px = focal * radius_mm / depth).
        appearance: clothing colours and light direction.
        mask: optional (H, W) uint8 silhouette drawn with the outer strokes (255 = person).
    """
    gain = np.ones((len(BONES), 3)) if appearance.colour_gain is None else appearance.colour_gain
    light = (
        np.array([-0.6, -0.8])
        if appearance.light_dir is None
        else np.asarray(appearance.light_dir, dtype=np.float64)
    )
    zmid = 0.5 * (depth[BONES[:, 0]] + depth[BONES[:, 1]])
    zroot = float(depth[0])
    for b in np.argsort(-zmid, kind="stable"):
        p0, p1 = uv[BONES[b, 0]], uv[BONES[b, 1]]
        # nearer parts are brighter (depth cue), Lambert-ish term from the limb's image direction
        near = np.clip(1.0 + 0.6 * (zroot - zmid[b]) / 1000.0, 0.6, 1.3)
        col = BONE_COLORS[b] * gain[b]
        if b == HEAD_BONE:
            r = focal * HEAD_RADIUS_MM / depth[BONES[b, 0]]
            _draw_head(image, mask, (p0, p1), r, col, near, light)
        else:
            r = focal * BONE_RADII_MM[b] / max(zmid[b], 1e-6)
            _draw_limb(image, mask, (p0, p1), r, col, near, light)


def _draw_head(
    image: np.ndarray,
    mask: np.ndarray | None,
    ends: tuple[np.ndarray, np.ndarray],
    r: float,
    col: np.ndarray,
    near: float,
    light: np.ndarray,
) -> None:
    """The head: three ellipse shells (radius ``r`` px) along the neck -> head-top ``ends``,
    colour ``col`` shaded and brightened by ``near``, highlights towards ``light``."""
    p0, p1 = ends
    c = p0 + 0.45 * (p1 - p0)
    axis = p1 - p0
    ang = float(np.degrees(np.arctan2(axis[1], axis[0])))
    half = max(np.linalg.norm(axis) * 0.6, r)
    ax = (max(1, int(round(half * _ONE))), max(1, int(round(0.85 * r * _ONE))))
    shells = ((1.0, 0.65), (0.7, 0.9), (0.35, 1.15))
    for k, (f, shade) in enumerate(shells):
        off = c + (1.0 - f) * 0.5 * r * light * (k > 0)
        a = (max(1, int(ax[0] * f)), max(1, int(ax[1] * f)))
        colour = tuple(float(x) for x in np.clip(col * shade * near, 0, 255))
        cv2.ellipse(image, _pt(off), a, ang, 0, 360, colour, -1, cv2.LINE_AA, _SHIFT)
        if mask is not None and k == 0:
            cv2.ellipse(mask, _pt(off), a, ang, 0, 360, 255, -1, cv2.LINE_8, _SHIFT)


def _draw_limb(
    image: np.ndarray,
    mask: np.ndarray | None,
    ends: tuple[np.ndarray, np.ndarray],
    r: float,
    col: np.ndarray,
    near: float,
    light: np.ndarray,
) -> None:
    """A limb: three capsule strokes of radius ``r`` px between ``ends``, colour ``col`` shaded,
    brightened by ``near`` and lit from ``light``."""
    p0, p1 = ends
    d = p1 - p0
    n = np.linalg.norm(d)
    perp = np.array([-d[1], d[0]]) / n if n > 1e-6 else np.zeros(2)
    lambert = 0.75 + 0.25 * abs(float(perp @ light))
    side = np.sign(perp @ light) if n > 1e-6 else 0.0
    for k, (f, shade) in enumerate(((1.0, 0.6), (0.65, 0.85), (0.3, 1.15))):
        off = (1.0 - f) * 0.5 * r * side * perp * (k > 0)
        t = max(1, int(round(2 * r * f)))
        colour = tuple(float(x) for x in np.clip(col * shade * near * lambert, 0, 255))
        cv2.line(image, _pt(p0 + off), _pt(p1 + off), colour, t, cv2.LINE_AA, _SHIFT)
        if mask is not None and k == 0:
            cv2.line(mask, _pt(p0), _pt(p1), 255, t, cv2.LINE_8, _SHIFT)


def render_view(
    pose_world: np.ndarray,
    camera: Camera,
    seed: int | np.random.Generator | None = 0,
    config: RenderConfig | None = None,
) -> RenderedView:
    """Render one camera's cropped view of a pose.

    Args:
        pose_world: (17, 3) joints in the world frame, mm (Human3.6M order).
        camera: the camera (its distortion is applied to the joints).
        seed: integer seed or generator; the same seed gives the same image.
        config: rendering options.
    Returns:
        :class:`RenderedView` with the crop, its affine and the joints in crop pixels.
    """
    cfg = config or RenderConfig()
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    S = cfg.size
    Xc = camera.world_to_camera(pose_world)
    uv_img = camera.project_camera(Xc)
    if cfg.augment:
        jit = rng.uniform(-cfg.scale_jitter, cfg.scale_jitter)
        shift = rng.uniform(-cfg.shift_jitter, cfg.shift_jitter, 2)
    else:
        jit, shift = 0.0, None
    A = crop_affine(uv_img, S, cfg.margin, jit, shift)
    uv = apply_affine(A, uv_img)
    focal = float(np.mean(np.diag(camera.K)[:2])) * float(affine_scale(A))

    image = _background(rng, S) if cfg.background else np.zeros((S, S, 3), np.uint8)
    mask = np.zeros((S, S), np.uint8)
    if cfg.augment:
        groups = PART_GROUP.max() + 1  # one cloth colour per limb
        gain = (rng.uniform(0.75, 1.15, (groups, 1)) * rng.uniform(0.85, 1.15, (groups, 3)))[PART_GROUP]
        ang = rng.uniform(0, 2 * np.pi)
        light = np.array([np.cos(ang), np.sin(ang)])
    else:
        gain, light = None, None
    appearance = Appearance(colour_gain=gain, light_dir=light)
    draw_person(image, uv, Xc[:, 2], focal, appearance=appearance, mask=mask)

    if cfg.background and rng.uniform() < cfg.occluder_prob:
        j = int(rng.integers(len(uv)))
        _random_shape(image, rng, S, max_frac=0.35, centre=uv[j] + rng.normal(0, S / 10, 2))
    if cfg.augment:  # global lighting, tint and sensor noise
        img = image.astype(np.float32) * rng.uniform(0.7, 1.3) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
        sigma = rng.uniform(0, cfg.noise)
        if sigma > 0:
            img += rng.normal(0, sigma, img.shape).astype(np.float32)
        image = np.clip(img, 0, 255).astype(np.uint8)
    return RenderedView(image=image, affine=A, keypoints=uv, depth=Xc[:, 2], mask=mask > 0)
