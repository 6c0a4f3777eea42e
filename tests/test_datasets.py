"""Readers for Human3.6M (h36m-fetch layout) and the MPI-INF-3DHP test set, on tiny fixture trees."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.io

from epipolarpose.datasets import H36M, MPIINF3DHPTest, pck_auc, square_bbox
from epipolarpose.datasets.h36m import H36M32_TO_17
from epipolarpose.datasets.mpi_inf_3dhp import AUC_THRESHOLDS_MM, MPI17_TO_H36M
from epipolarpose.errors import InputError

CAMS = ("54138969", "55011271")
K = {"54138969": (1145.0, 512.5, 1143.8, 515.5), "55011271": (1149.7, 508.8, 1147.6, 508.1)}  # fx, cx, fy, cy
N_FRAMES = 130


def _write_h36m(root, rng, subject="S9", sequence="Directions-1", image_size=(40, 30)):
    """One sequence seen by two cameras, 130 frames, 32 joints; images only for every 64th frame."""
    seq = root / subject / sequence
    rows = {"pose/2d": [], "pose/3d": [], "frame": [], "camera": []}
    for cam in CAMS:
        fx, cx, fy, cy = K[cam]
        p3 = rng.normal(0, 300, size=(N_FRAMES, 32, 3)) + [0, 0, 4500]
        p2 = np.stack([fx * p3[..., 0] / p3[..., 2] + cx, fy * p3[..., 1] / p3[..., 2] + cy], -1)
        rows["pose/3d"].append(p3)
        rows["pose/2d"].append(p2)
        rows["frame"].append(np.arange(1, N_FRAMES + 1))
        rows["camera"].append(np.full(N_FRAMES, int(cam)))
        img_dir = seq / "imageSequence" / cam
        img_dir.mkdir(parents=True)
        for f in range(1, N_FRAMES + 1, 64):
            cv2.imwrite(str(img_dir / f"img_{f:06d}.jpg"), np.zeros(image_size[::-1] + (3,), np.uint8))
    annot = {k: np.concatenate(v) for k, v in rows.items()}
    annot.update({f"intrinsics/{c}": np.array(K[c]) for c in CAMS})
    np.savez(seq / "annot.npz", **annot)
    return annot


def test_h36m_reader_test_protocol(tmp_path, rng) -> None:
    annot = _write_h36m(tmp_path, rng)
    ds = H36M(tmp_path, subjects=["S9"])  # test protocol: every 64th frame
    assert len(ds) == 6
    np.testing.assert_array_equal(ds.frames, [1, 65, 129, 1, 65, 129])
    assert list(ds.camera_names) == [CAMS[0]] * 3 + [CAMS[1]] * 3
    rows = np.array([0, 64, 128, 130, 194, 258])
    np.testing.assert_allclose(ds.joints3d_camera, annot["pose/3d"][rows][:, H36M32_TO_17])
    np.testing.assert_allclose(ds.joints2d[:, 4], annot["pose/2d"][rows, 6])  # LHip is joint 6 of 32
    s = ds[4]
    assert s.image_path == tmp_path / "S9/Directions-1/imageSequence/55011271/img_000065.jpg"
    assert s.image_path.is_file() and (s.subject, s.sequence, s.frame) == ("S9", "Directions-1", 65)
    # the camera comes from the annotation's [fx, cx, fy, cy] and the image's size
    np.testing.assert_allclose(s.camera.K, [[1149.7, 0, 508.8], [0, 1147.6, 508.1], [0, 0, 1]])
    assert s.camera.image_size == (40, 30)
    np.testing.assert_allclose(s.camera.project_camera(s.joints3d_camera), s.joints2d, atol=1e-6)
    # square box around the joints with the margin
    x0, y0, x1, y1 = s.bbox
    assert np.isclose(x1 - x0, y1 - y0)
    assert np.all(s.joints2d >= [x0, y0]) and np.all(s.joints2d <= [x1, y1])
    assert np.isclose(x1 - x0, 1.3 * np.ptp(s.joints2d, axis=0).max())
    assert len(H36M(tmp_path, subjects=["S9"], every=1)) == 2 * N_FRAMES
    assert len(H36M(tmp_path, subjects=["S9"], cameras=[CAMS[1]])) == 3


def test_h36m_cameras_from_rig(tmp_path, rng, rig_s9) -> None:
    _write_h36m(tmp_path, rng)
    rig_s9.save(tmp_path / "S9/rig.json")
    ds = H36M(tmp_path, split="test", subjects=["S9"])
    cam = ds[0].camera
    ref = rig_s9[rig_s9.names.index(CAMS[0])]
    np.testing.assert_allclose(cam.R, ref.R)
    np.testing.assert_allclose(cam.t, ref.t)
    assert cam.image_size == ref.image_size


def test_h36m_bad_input(tmp_path, rng) -> None:
    with pytest.raises(InputError, match="is not a folder"):
        H36M(tmp_path / "nowhere")
    _write_h36m(tmp_path, rng)
    with pytest.raises(InputError, match="subject folder .*S11 is missing"):
        H36M(tmp_path, split="test")
    with pytest.raises(InputError, match="S1 is missing"):
        H36M(tmp_path, split="train")
    with pytest.raises(InputError, match="no Human3.6M samples"):
        H36M(tmp_path, subjects=["S9"], cameras=["60457274"])
    (tmp_path / "S9/Walking-2").mkdir()
    with pytest.raises(InputError, match="Walking-2 has no annot.h5 or annot.npz"):
        H36M(tmp_path, subjects=["S9"])
    np.savez(tmp_path / "S9/Walking-2/annot.npz", **{"pose/2d": np.zeros((2, 32, 2)), "frame": np.arange(2)})
    with pytest.raises(InputError, match="annot.npz: missing key 'pose/3d'"):
        H36M(tmp_path, subjects=["S9"])
    np.savez(
        tmp_path / "S9/Walking-2/annot.npz",
        **{
            "pose/2d": np.zeros((1, 32, 2)),
            "pose/3d": np.ones((1, 32, 3)),
            "frame": [1],
            "camera": [54138969],
        },
    )
    with pytest.raises(InputError, match=r"image folder .*Walking-2/imageSequence/54138969 is missing"):
        H36M(tmp_path, subjects=["S9"])


def test_square_bbox_known_answer() -> None:
    kp = np.array([[[10.0, 20.0], [30.0, 60.0], [np.nan, np.nan]]])
    np.testing.assert_allclose(square_bbox(kp, margin=1.5), [[-10.0, 10.0, 50.0, 70.0]])


# --------------------------------------------------------------------------- MPI-INF-3DHP
def _write_mpi(root, rng, seq="TS1", n=6, valid=(1, 0, 1, 1, 0, 1)):
    """A test sequence in MATLAB axis order (as scipy.io.savemat writes it)."""
    mpi3 = rng.normal(0, 300, size=(n, 17, 3)) + [0, 0, 4000]
    univ = mpi3 * 0.9
    mpi2 = mpi3[..., :2] / mpi3[..., 2:] * 1500 + 1024
    to_mat = lambda a: a[:, None].transpose()  # (n, 17, d) -> (d, 17, 1, n)  # noqa: E731
    sdir = root / seq
    (sdir / "imageSequence").mkdir(parents=True)
    scipy.io.savemat(
        sdir / "annot_data.mat",
        {
            "annot2": to_mat(mpi2),
            "annot3": to_mat(mpi3),
            "univ_annot3": to_mat(univ),
            "valid_frame": np.array(valid, float)[None],
            "activity_annotation": np.array([1, 1, 2, 2, 7, 7.0])[None],
        },
    )
    return mpi2, mpi3, univ


def test_mpi_reader(tmp_path, rng) -> None:
    mpi2, mpi3, univ = _write_mpi(tmp_path, rng)
    ds = MPIINF3DHPTest(tmp_path, sequences=["TS1"])
    assert len(ds) == 4
    np.testing.assert_array_equal(ds.frames, [1, 3, 4, 6])
    np.testing.assert_array_equal(ds.activities, [1, 2, 2, 7])
    assert ds[1].image_path == tmp_path / "TS1/imageSequence/img_000003.jpg"
    rows = np.array([0, 2, 3, 5])
    # joint mapping, named joint by joint: pelvis->Hip, head_top->Head, head->Neck/Nose,
    # neck->Thorax, right_hip->RHip, left_shoulder->LShoulder, right_wrist->RWrist
    for ours, theirs in ((0, 14), (10, 0), (9, 16), (8, 1), (1, 8), (11, 5), (16, 4)):
        np.testing.assert_allclose(ds.joints3d_univ[:, ours], univ[rows, theirs])
        np.testing.assert_allclose(ds.joints3d_camera[:, ours], mpi3[rows, theirs])
        np.testing.assert_allclose(ds.joints2d[:, ours], mpi2[rows, theirs])
    assert sorted(MPI17_TO_H36M) == list(range(17))
    s = ds[3]
    assert (s.sequence, s.frame, s.activity) == ("TS1", 6, 7)


def test_mpi_bad_input(tmp_path, rng) -> None:
    _write_mpi(tmp_path, rng)
    with pytest.raises(InputError, match="TS2 is missing"):
        MPIINF3DHPTest(tmp_path)
    (tmp_path / "TS2").mkdir()
    with pytest.raises(InputError, match="TS2/annot_data.mat is missing"):
        MPIINF3DHPTest(tmp_path, sequences=["TS1", "TS2"])
    scipy.io.savemat(tmp_path / "TS2/annot_data.mat", {"annot2": np.zeros((2, 17, 1, 3))})
    with pytest.raises(InputError, match="missing key 'annot3'"):
        MPIINF3DHPTest(tmp_path, sequences=["TS2"])
    (tmp_path / "TS2/annot_data.mat").write_bytes(b"garbage")
    with pytest.raises(InputError, match="annot_data.mat"):
        MPIINF3DHPTest(tmp_path, sequences=["TS2"])


def test_pck_auc_known_answers(rng) -> None:
    gt = rng.normal(0, 300, size=(10, 17, 3))
    shifted = gt + [1000.0, -50.0, 30.0]  # a global translation: root-relative, so perfect
    r = pck_auc(shifted, gt)
    assert r["pck"] == 100.0 and r["auc"] == pytest.approx(100 * 30 / 31)  # threshold 0 never counts
    off = gt.copy()
    off[:, 1:, 0] += 97.0  # every non-root joint 97 mm off
    r = pck_auc(off, gt)
    assert r["pck"] == 100.0
    assert r["auc"] == pytest.approx(100 * 11 / 31)  # thresholds 100, 105, ..., 150
    assert np.sum(AUC_THRESHOLDS_MM > 97) == 11
    off[:5, 1:, 0] += 100.0  # half the frames 197 mm off
    r = pck_auc(off, gt, activities=np.array([1] * 5 + [2] * 5))
    assert r["pck"] == 50.0
    assert r["per_activity_pck"] == {"Stand/Walk": 0.0, "Exercise": 100.0}
    # the unscored joints (Hip, Spine, Neck/Nose) do not count
    bad = gt.copy()
    bad[:, [7, 9], :] += 1000.0
    assert pck_auc(bad, gt)["pck"] == 100.0
    with pytest.raises(InputError, match="must both be"):
        pck_auc(gt[:, :, :2], gt[:, :, :2])
