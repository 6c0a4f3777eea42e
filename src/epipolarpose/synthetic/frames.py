"""Whole camera frames of the capsule person (for videos), drawn like :mod:`.render` draws crops.

:func:`render_frame` draws the person seen by a camera into a full image of the camera's size —
the frame a real camera would record — so that rendered clips can be written to video files and
read back by the footage training source (:mod:`epipolarpose.training.footage`). With
``background=False`` and ``jitter=False`` the person is drawn exactly as
:func:`~epipolarpose.synthetic.render.render_view` draws it without augmentation, only at the
image's resolution instead of the crop's.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..camera import Camera
from .render import PART_GROUP, Appearance, _background, draw_person


def render_frame(
    pose_world: np.ndarray,
    camera: Camera,
    seed: int | np.random.Generator | None = 0,
    *,
    background: bool = True,
    jitter: bool = True,
    noise: float = 4.0,
) -> np.ndarray:
    """The camera's whole image of a pose.

    Args:
        pose_world: (17, 3) joints in the world frame, mm (Human3.6M order).
        camera: the camera (image size, intrinsics, distortion applied to the joints).
        seed: integer seed or generator.
        background: random background (gradient or low-frequency noise and shapes); False: black.
        jitter: random clothing colours, light direction, gain and sensor noise (up to ``noise``).
        noise: maximum std of the additive pixel noise (grey levels) when ``jitter``.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    w, h = (int(v) for v in camera.image_size)
    if background:
        side = max(w, h)
        image = np.ascontiguousarray(_background(rng, side)[:h, :w])
    else:
        image = np.zeros((h, w, 3), np.uint8)
    Xc = camera.world_to_camera(pose_world)
    uv = camera.project_camera(Xc)
    focal = float(np.mean(np.diag(camera.K)[:2]))
    appearance = Appearance()
    if jitter:
        groups = PART_GROUP.max() + 1
        gain = (rng.uniform(0.75, 1.15, (groups, 1)) * rng.uniform(0.85, 1.15, (groups, 3)))[PART_GROUP]
        ang = rng.uniform(0, 2 * np.pi)
        appearance = Appearance(colour_gain=gain, light_dir=np.array([np.cos(ang), np.sin(ang)]))
    draw_person(image, uv, Xc[:, 2], focal, appearance=appearance)
    if jitter:
        img = image.astype(np.float32) * rng.uniform(0.8, 1.2) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
        sigma = rng.uniform(0, noise)
        if sigma > 0:
            img += rng.normal(0, sigma, img.shape).astype(np.float32)
        image = np.clip(img, 0, 255).astype(np.uint8)
    return image


def render_video_frames(poses_world: np.ndarray, camera: Camera, seed: int = 0, **kwargs) -> np.ndarray:
    """(F, H, W, 3) uint8 **BGR** frames of a clip (ready for :func:`epipolarpose.video.write_video`);
    frame ``f`` is :func:`render_frame` with the seed ``(seed, f)``; ``kwargs`` go to it."""
    frames = [
        render_frame(p, camera, np.random.default_rng([seed, f]), **kwargs) for f, p in enumerate(poses_world)
    ]
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames])
