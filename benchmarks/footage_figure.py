"""The picture of docs/footage_training.md: real predictions on held-out caliscope frames.

For a few frames of the last 30 % of a session, each row shows one camera's crop (the box from the
MediaPipe detections) with the 2D joints and the 3D pose of two networks (e.g. the benchmark's
renders-only and renders-then-footage networks, ``learning_bench.py --suite footage``):

    python benchmarks/footage_figure.py --net renders_only=runs/.../renders_only.pt \
        --net "renders + footage"=runs/.../renders_then_footage_seed0.pt -o docs/images/footage_predictions.png
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("EPIPOLARPOSE_SHARED", "../shared")))
    ap.add_argument("--detections", type=Path, default=Path("/work/cache/footage"))
    ap.add_argument("--session", default="caliscope_charuco_calibration")
    ap.add_argument("--net", action="append", required=True, help="NAME=checkpoint (repeatable)")
    ap.add_argument("--views", default="85:1,95:2,105:3", help="frame:camera pairs")
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from epipolarpose.formats import Poses2D
    from epipolarpose.real_prediction import FootageSpec, predict_footage
    from epipolarpose.viz import draw_pose2d, plot_poses3d

    folder = args.shared / "data/footage" / args.session
    videos = sorted(folder.glob("cam_*.mp4"))
    p2d_path = args.detections / args.session / "poses2d_static.npz"
    views = [tuple(int(x) for x in v.split(":")) for v in args.views.split(",")]
    lo, hi = min(f for f, _ in views), max(f for f, _ in views) + 1
    preds = {}
    for spec in args.net:
        name, ckpt = spec.split("=", 1)
        out = args.output.with_name(f"_{name.replace(' ', '_')}.npz")
        predict_footage(
            Path(ckpt), FootageSpec(videos, poses2d=p2d_path, frames=(lo, hi)), out, progress=False
        )
        preds[name] = np.load(out)
        out.unlink()
    Poses2D.load(p2d_path)  # fail early on a bad file
    fig = plt.figure(figsize=(3.2 * (1 + 2 * len(preds)), 3.0 * len(views)), dpi=90)
    cols = 1 + 2 * len(preds)
    for r, (f, c) in enumerate(views):
        cap = cv2.VideoCapture(str(videos[c]))
        cap.set(cv2.CAP_PROP_POS_FRAMES, f)
        ok, frame = cap.read()
        cap.release()
        if not ok:
            raise SystemExit(f"cannot read frame {f} of {videos[c]}")
        first = next(iter(preds.values()))
        A = first["crop_affine"][c, f - lo].astype(np.float64)
        side = 256
        s = side / 64.0 if A[0, 0] > 0 else 1.0
        Ab = A * np.array([[s], [s]])  # the 64 px crop at 256 px
        crop = cv2.warpAffine(frame, Ab, (side, side), flags=cv2.INTER_AREA)
        ax = fig.add_subplot(len(views), cols, r * cols + 1)
        ax.imshow(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
        ax.set_title(f"{videos[c].stem}, frame {f}", fontsize=9)
        ax.set_axis_off()
        for k, (name, p) in enumerate(preds.items()):
            uv = p["poses2d"][c, f - lo].astype(np.float64)
            uv_c = uv @ Ab[:, :2].T + Ab[:, 2]
            img = draw_pose2d(crop.copy(), uv_c, thickness=2)
            ax = fig.add_subplot(len(views), cols, r * cols + 2 + 2 * k)
            ax.imshow(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            ax.set_title(f"{name}: 2D", fontsize=9)
            ax.set_axis_off()
            P = p["poses3d_camera"][c, f - lo].astype(np.float64)
            P = P - P[:1]
            ax3 = fig.add_subplot(len(views), cols, r * cols + 3 + 2 * k, projection="3d")
            plot_poses3d(np.stack([P[:, 0], P[:, 2], -P[:, 1]], -1), ax=ax3)
            ax3.set_title(f"{name}: 3D (camera axes)", fontsize=9)
            ax3.set_xticklabels([])
            ax3.set_yticklabels([])
            ax3.set_zticklabels([])
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
