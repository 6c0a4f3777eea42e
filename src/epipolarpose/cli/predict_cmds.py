"""``epipolarpose predict``: single-image 3D pose from person crops with a trained network."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import InputError
from ._app import app


def read_rgb(path: Path):
    """Read an image file as RGB uint8 (H, W, 3); :class:`InputError` naming the file if unreadable."""
    import cv2

    if not path.is_file():
        raise InputError(f"image {path} does not exist")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"image {path} cannot be read (not an image OpenCV can decode)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_overlays(directory: Path, names: list[str], images: list, poses2d, poses3d) -> None:
    """Write ``NNNN_<stem>.png``: the image with its 2D pose beside a 3D plot of the pose
    (camera frame shown with up = -y, depth = z)."""
    import cv2
    import matplotlib.pyplot as plt
    import numpy as np

    from ..viz import draw_pose2d, plot_poses3d, save_figure

    directory.mkdir(parents=True, exist_ok=True)
    for name, image, p2, p3 in zip(names, images, poses2d, poses3d):
        fig = plt.figure(figsize=(8, 4), dpi=80)
        ax = fig.add_subplot(1, 2, 1)
        thickness = max(1, max(image.shape[:2]) // 150)
        bgr = draw_pose2d(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), p2, thickness=thickness)
        ax.imshow(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        ax.set_axis_off()
        ax3 = fig.add_subplot(1, 2, 2, projection="3d")
        plot_poses3d(np.stack([p3[:, 0], p3[:, 2], -p3[:, 1]], -1), ax=ax3)
        ax3.set_xlabel("x")
        ax3.set_ylabel("depth")
        ax3.set_zlabel("up")
        save_figure(fig, directory / name, dpi=80)
        plt.close(fig)


@app.command()
def predict(
    checkpoint: Path = typer.Argument(
        ...,
        help="Trained network: a .pt from save_checkpoint or a Lightning .ckpt from `epipolarpose train`.",
    ),
    images: list[Path] = typer.Argument(
        None, help="Person crops (any size; letterboxed to a square and resized to the network input)."
    ),
    clips: list[str] = typer.Option(
        None,
        "--clips",
        help="Instead of IMAGES: render the synthetic views of these motion-capture clips (BVH files, "
        "folders, or 'train'/'test' of the shared split) through --rig and also write their ground truth "
        "(--gt-out), for `epipolarpose evaluate`. Repeatable.",
    ),
    rig: Path | None = typer.Option(
        None, "--rig", help="With --clips: the rig that sees them (default: the shared Human3.6M S9 rig)."
    ),
    fps: float = typer.Option(10.0, "--fps", help="With --clips: resampling rate of the clips."),
    max_clips: int | None = typer.Option(None, "--max-clips", help="With --clips: an evenly spaced subset."),
    gt_out: Path | None = typer.Option(
        None, "--gt-out", help="With --clips: where to write gt.npz (default: next to --output)."
    ),
    seed: int = typer.Option(0, "--seed", help="With --clips: rendering seed."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the predictions (.npz)."),
    refiner: Path | None = typer.Option(
        None,
        "--refiner",
        help="Refiner checkpoint (`epipolarpose refine train`) applied to the 3D poses; the raw ones are kept as poses3d_unrefined.",
    ),
    overlays: Path | None = typer.Option(
        None, "--overlays", help="Folder for PNGs of each image with its 2D pose and a 3D plot."
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available), cpu, cuda or cuda:N."),
) -> None:
    """Predict 3D and 2D poses from single person crops with a trained network.

    With --clips instead of images it renders a synthetic test split and writes, per camera,
    `poses3d_camera` (C, F, J, 3) mm (root depth from the ground truth, the paper's protocol) next
    to a gt.npz, so that `epipolarpose evaluate PRED GT --centroids ...` scores the network.
    """
    import numpy as np
    from tqdm import tqdm

    from ..device import resolve_device
    from ..io import save_npz
    from ..models import load_model, predict_crops
    from ..refiner import load_refiner
    from ..skeleton import H36M_JOINTS, default_joint_names

    if output.suffix != ".npz":
        raise InputError(f"--output {output} must end in .npz")
    if bool(images) == bool(clips):
        raise InputError("give either IMAGES or --clips (a synthetic test split), not both or neither")
    dev = resolve_device(device)
    model, config, _ = load_model(checkpoint, map_location=dev)
    ref = load_refiner(refiner, map_location=dev) if refiner is not None else None
    if clips:
        _predict_clips(
            model,
            config,
            ref,
            clips=clips,
            rig_path=rig,
            fps=fps,
            max_clips=max_clips,
            output=output,
            gt_out=gt_out,
            seed=seed,
            batch_size=batch_size,
        )
        return
    if overlays is not None and config.num_joints != len(H36M_JOINTS):
        raise InputError(
            f"--overlays draws the {len(H36M_JOINTS)} Human3.6M joints; this network has {config.num_joints}"
        )
    for path in images:  # fail before any work if an input is missing
        if not path.is_file():
            raise InputError(f"image {path} does not exist")
    results: dict[str, list] = {"poses2d": [], "poses3d": [], "crop_size": []}
    for start in tqdm(range(0, len(images), batch_size), desc="predict", unit="batch", disable=None):
        paths = images[start : start + batch_size]
        rgb = [read_rgb(p) for p in paths]
        pred = predict_crops(model, rgb)
        for k in results:
            results[k].append(pred[k])
        if overlays is not None:
            names = [f"{start + i:04d}_{p.stem}.png" for i, p in enumerate(paths)]
            write_overlays(overlays, names, rgb, pred["poses2d"], pred["poses3d"])
    out = {k: np.concatenate(v).astype(np.float32) for k, v in results.items()}
    if ref is not None:
        out["poses3d_unrefined"] = out["poses3d"]
        out["poses3d"] = np.asarray(ref.refine(out["poses3d"]), dtype=np.float32)
    joint_names = default_joint_names(config.num_joints)
    save_npz(output, **out, image_paths=np.array([str(p) for p in images]), joint_names=np.array(joint_names))
    typer.echo(f"wrote {len(images)} predictions to {output}", err=True)


def _predict_clips(
    model, config, ref, *, clips, rig_path, fps, max_clips, output, gt_out, seed, batch_size
) -> None:
    """``predict --clips``: render the split, predict every view, write preds + gt.npz."""
    import numpy as np

    from ..camera import Rig
    from ..formats import GroundTruth
    from ..io import save_npz
    from ..skeleton import H36M_JOINTS
    from ..synthetic import default_rig
    from ..synthetic.render import RenderConfig
    from ..training.data import MultiViewDataset, MultiViewFrames, eval_render_config
    from ..training.train import predict_dataset, resolve_clips

    if not config.is_3d:
        raise InputError("--clips evaluates a 3D network; this checkpoint is a 2D network (depth_bins = 1)")
    rig = Rig.load(rig_path) if rig_path is not None else default_rig()
    frames = MultiViewFrames.from_clips(
        resolve_clips(clips, max_clips=max_clips), rig, fps, what="--clips split"
    )
    dataset = MultiViewDataset(
        frames, eval_render_config(RenderConfig(size=config.input_size)), "full", seed=seed
    )
    res = predict_dataset(model, dataset, frames_per_batch=max(1, batch_size // len(rig)), progress=True)
    cam = res["camera_mm"]  # (C, F, J, 3)
    out = {"poses3d_camera": cam.astype(np.float32)}
    if ref is not None:
        out["poses3d_camera_unrefined"] = out["poses3d_camera"]
        out["poses3d_camera"] = np.asarray(ref.refine(cam.reshape(-1, *cam.shape[2:])), np.float32).reshape(
            cam.shape
        )
    gt_path = gt_out or output.with_name(output.stem + "_gt.npz")
    save_npz(
        output,
        **out,
        valid=np.ones(cam.shape[1:3], bool),
        units=np.array("mm"),
        joint_names=np.array(H36M_JOINTS),
        rig_json=np.array(rig.to_json()),
    )
    GroundTruth(frames.poses_world.astype(np.float32), frames.clip, rig).save(gt_path)
    typer.echo(
        f"wrote {cam.shape[1]} frames x {cam.shape[0]} views to {output} and their ground truth to {gt_path}",
        err=True,
    )
