"""``nnext convert nsclc``: synthetic DICOM CT series + RTSTRUCT (written here with pydicom / rt-utils) ->
nnU-Net raw dataset with exact geometry, HU and label voxels.

Slice convention of the synthetic series: array index ``K`` (SimpleITK's z order) sits at
``z = z0 + K * dz`` (ascending); files are written in a shuffled order with InstanceNumber descending along
z, so neither the file order nor the instance numbers give the slice order.
"""
import json
import random

import numpy as np
import pytest
import SimpleITK as sitk

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.sequence import Sequence  # noqa: E402
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, RTStructureSetStorage, generate_uid  # noqa: E402

from nnunet_ext.cli.main import main  # noqa: E402
from nnunet_ext.io.imageio import read_image  # noqa: E402

ORIGIN = (-120.3, 45.7, -60.0)   # LPS mm of voxel (0, 0, 0)
SPACING_RC = (0.8, 0.9)          # PixelSpacing: (between rows = y, between columns = x)
DZ = 3.0


def write_ct(folder, hu, patient="LUNG1-001", origin=ORIGIN, spacing_rc=SPACING_RC, dz=DZ, slope=2.0,
             intercept=-1024.0, seed=0):
    """Write ``hu`` (K, rows, cols) as a CT series; return its UIDs and per-slice SOP instance UIDs."""
    folder.mkdir(parents=True, exist_ok=True)
    nz, nr, nc = hu.shape
    info = {"study": generate_uid(), "series": generate_uid(), "frame": generate_uid(), "sops": [],
            "patient": patient, "grid": (origin, spacing_rc, dz)}
    order = list(range(nz))
    random.Random(seed).shuffle(order)
    sops = [generate_uid() for _ in range(nz)]
    for n, k in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, sops[k]
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, sops[k], "CT"
        ds.PatientID, ds.PatientName = patient, "Anon"
        ds.StudyDate, ds.StudyTime, ds.StudyID = "20080918", "120000", "1"   # rt-utils copies these
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = info["study"], info["series"], info["frame"]
        ds.InstanceNumber = nz - k
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + k * dz]
        ds.PixelSpacing, ds.SliceThickness = list(spacing_rc), dz
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = nr, nc, 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "HU"
        stored = (hu[k] - intercept) / slope
        assert np.array_equal(stored, np.round(stored)) and stored.min() >= 0
        ds.PixelData = stored.astype(np.uint16).tobytes()
        ds.save_as(folder / f"{n:03d}.dcm", enforce_file_format=True)
    info["sops"] = sops
    return info


def pixel_to_mm(k, r, c, origin=ORIGIN, spacing_rc=SPACING_RC, dz=DZ):
    """LPS mm of (continuous) voxel (slice k, row r, column c) of the identity-oriented series."""
    return [origin[0] + c * spacing_rc[1], origin[1] + r * spacing_rc[0], origin[2] + k * dz]


def write_rtstruct(path, ct, rois, reference=True):
    """Hand-written RTSTRUCT: ``rois`` = {name: [(k, [(row, col), ...]), ...]} polygons in voxel units that
    are converted to LPS mm here; contours reference their CT slice in ContourImageSequence."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sop = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = RTStructureSetStorage, sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = RTStructureSetStorage, sop, "RTSTRUCT"
    ds.PatientID, ds.PatientName = ct["patient"], "Anon"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = ct["study"], generate_uid()
    ds.StructureSetLabel = "test"
    frame = Dataset()
    frame.FrameOfReferenceUID = ct["frame"]
    if reference:
        series = Dataset()
        series.SeriesInstanceUID = ct["series"]
        study = Dataset()
        study.RTReferencedSeriesSequence = Sequence([series])
        frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    ds.StructureSetROISequence, ds.ROIContourSequence = Sequence(), Sequence()
    for number, (name, contours) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = number, name, ct["frame"]
        ds.StructureSetROISequence.append(roi)
        items = []
        for k, polygon in contours:
            c = Dataset()
            if 0 <= k < len(ct["sops"]):
                image = Dataset()
                image.ReferencedSOPClassUID, image.ReferencedSOPInstanceUID = CTImageStorage, ct["sops"][k]
                c.ContourImageSequence = Sequence([image])
            c.ContourGeometricType, c.NumberOfContourPoints = "CLOSED_PLANAR", len(polygon)
            c.ContourData = [round(v, 4) for r, col in polygon for v in pixel_to_mm(k, r, col, *ct["grid"])]
            items.append(c)
        roi_contour = Dataset()
        roi_contour.ReferencedROINumber, roi_contour.ContourSequence = number, Sequence(items)
        ds.ROIContourSequence.append(roi_contour)
    ds.save_as(path, enforce_file_format=True)


def rect(r0, r1, c0, c1):
    return [(r0, c0), (r0, c1), (r1, c1), (r1, c0)]


def phantom(shape=(12, 28, 32), seed=0):
    """HU volume (K, rows, cols), even values (slope 2) with stored values != HU."""
    rng = np.random.default_rng(seed)
    return (rng.integers(-500, 800, size=shape) * 2).astype(np.int32)


GTV = {  # slice K -> polygon (row, col) -> the voxels it covers under the documented convention
    4: rect(5, 12, 6, 20), 5: rect(5, 12, 6, 20), 6: rect(6, 10, 8, 15),
    7: [(2.5, 3.4), (2.5, 9.2), (6.5, 9.2), (6.5, 3.4)],         # fractional: centres inside only
    8: [(2, 2), (2, 8), (8, 2)],                                 # triangle through voxel centres
}


def expected_gtv(shape):
    m = np.zeros(shape, np.uint8)
    m[4, 5:13, 6:21] = m[5, 5:13, 6:21] = m[6, 6:11, 8:16] = 1
    m[7, 3:7, 4:10] = 1
    r, c = np.mgrid[: shape[1], : shape[2]]
    m[8][(r >= 2) & (c >= 2) & (r + c <= 10)] = 1
    return m


@pytest.fixture
def raw(tmp_path, monkeypatch):
    folder = tmp_path / "nnUNet_raw"
    monkeypatch.setenv("nnUNet_raw", str(folder))
    return folder


def one_patient(root, patient="LUNG1-001", rois=None, shape=(12, 28, 32), seed=0, **ct_kwargs):
    hu = phantom(shape, seed)
    ct = write_ct(root / patient / "study" / "1.000000-CT-1234", hu, patient=patient, seed=seed, **ct_kwargs)
    write_rtstruct(root / patient / "study" / "1.000000-RTSTRUCT-5678" / "1-1.dcm", ct,
                   rois if rois is not None else {"GTV-1": list(GTV.items())})
    return hu, ct


def test_geometry_hu_and_label_voxels_are_exact(tmp_path, raw):
    tcia = tmp_path / "NSCLC-Radiomics"
    hu, ct = one_patient(tcia, rois={"Lung-Total": [(3, rect(0, 27, 0, 31))], "GTV-1": list(GTV.items())})
    (tcia / "LUNG1-001" / "README.txt").write_text("not DICOM")
    assert main(["convert", "nsclc", "-i", str(tcia), "-d", "701", "--no-progress"]) == 0
    out = raw / "Dataset701_NSCLCRadiomics"
    image = sitk.ReadImage(str(out / "imagesTr" / "LUNG1-001_0000.nii.gz"))
    label = sitk.ReadImage(str(out / "labelsTr" / "LUNG1-001.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(image), hu)                     # HU, z ascending
    assert image.GetPixelID() == sitk.sitkInt16 and label.GetPixelID() == sitk.sitkUInt8
    assert np.allclose(image.GetOrigin(), ORIGIN) and np.allclose(image.GetSpacing(), (0.9, 0.8, 3.0))
    assert np.allclose(image.GetDirection(), np.eye(3).ravel())
    for get in ("GetOrigin", "GetSpacing", "GetDirection", "GetSize"):
        assert np.allclose(getattr(label, get)(), getattr(image, get)())
    assert np.array_equal(sitk.GetArrayFromImage(label), expected_gtv(hu.shape))
    # one physical point round trip: voxel (K=4, row 5, col 6) is where the contour vertex was written
    assert np.allclose(image.TransformIndexToPhysicalPoint((6, 5, 4)), pixel_to_mm(4, 5, 6))

    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(out), num_processes=1)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "CT"} and meta["labels"] == {"background": 0, "tumour": 1}
    assert meta["numTraining"] == 1 and meta["file_ending"] == ".nii.gz" and "licence" in meta
    entry = json.loads((out / "conversion_log.json").read_text())["cases"]["LUNG1-001"]
    assert entry["status"] == "converted" and entry["roi"] == "GTV-1" and entry["ct_series_uid"] == ct["series"]
    assert entry["rtstruct_match"] == "reference" and entry["label_voxels"] == int(expected_gtv(hu.shape).sum())


def test_duplicate_contours_are_united(tmp_path, raw):
    tcia = tmp_path / "in"
    hu, _ = one_patient(tcia, rois={"GTV-1": [(5, rect(5, 12, 6, 20)), (5, rect(5, 12, 6, 20)),
                                              (5, rect(8, 14, 10, 25))]})
    assert main(["convert", "nsclc", "-i", str(tcia), "-d", "702", "--no-progress"]) == 0
    label, _ = read_image(raw / "Dataset702_NSCLCRadiomics" / "labelsTr" / "LUNG1-001.nii.gz")
    expected = np.zeros(hu.shape, np.uint8)
    expected[5, 5:13, 6:21] = expected[5, 8:15, 10:26] = 1
    assert np.array_equal(label, expected)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # rt-utils 1.2.7 uses pydicom 2 attributes
def test_rtutils_written_roi_case_insensitive_and_roi_flag(tmp_path, raw):
    rt_utils = pytest.importorskip("rt_utils")
    tcia = tmp_path / "in"
    hu = phantom((10, 32, 32), seed=1)
    series_dir = tcia / "LUNG1-007" / "s" / "CT"
    write_ct(series_dir, hu, patient="LUNG1-007", spacing_rc=(0.9, 0.9), seed=1)
    r, c = np.mgrid[:32, :32]
    disk = (r - 14) ** 2 + (c - 18) ** 2 <= 36
    gtv = np.zeros((32, 32, 10), bool)                       # rt-utils order: (rows, cols, slices ascending)
    gtv[:, :, 3] = gtv[:, :, 4] = disk
    gtv[2:9, 20:30, 6] = True
    other = np.zeros_like(gtv)
    other[20:30, 3:12, 2:5] = True
    rts = rt_utils.RTStructBuilder.create_new(dicom_series_path=str(series_dir))
    rts.add_roi(mask=gtv, name="gtv-1")
    rts.add_roi(mask=other, name="Lung-Left")
    (tcia / "LUNG1-007" / "s" / "RT").mkdir()
    rts.save(str(tcia / "LUNG1-007" / "s" / "RT" / "rt.dcm"))

    assert main(["convert", "nsclc", "-i", str(tcia), "-d", "703", "--no-progress"]) == 0
    label, _ = read_image(raw / "Dataset703_NSCLCRadiomics" / "labelsTr" / "LUNG1-007.nii.gz")
    assert np.array_equal(label, np.moveaxis(gtv, 2, 0))     # (rows, cols, K) -> (K, rows, cols)
    assert main(["convert", "nsclc", "-i", str(tcia), "-d", "704", "--roi", "NOPE", "LUNG-LEFT",
                 "--no-progress"]) == 0
    out = raw / "Dataset704_NSCLCRadiomics"
    label, _ = read_image(out / "labelsTr" / "LUNG1-007.nii.gz")
    assert np.array_equal(label, np.moveaxis(other, 2, 0))
    assert json.loads((out / "conversion_log.json").read_text())["cases"]["LUNG1-007"]["roi"] == "Lung-Left"
    # rt-utils reads its own file back to the same mask (valid for square, isotropic pixels only: see dicom.py)
    loaded = rt_utils.RTStructBuilder.create_from(str(series_dir), str(tcia / "LUNG1-007" / "s" / "RT" / "rt.dcm"))
    assert np.array_equal(loaded.get_roi_mask_by_name("gtv-1"), gtv)


def test_missing_roi_lists_names_found(tmp_path, raw, capsys):
    tcia = tmp_path / "in"
    one_patient(tcia, rois={"GTV-2": list(GTV.items()), "Heart": [(5, rect(1, 3, 1, 3))]})
    assert main(["convert", "nsclc", "-i", str(tcia), "-d", "705", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "LUNG1-001" in err and "1-1.dcm" in err
    assert "'GTV-2'" in err and "'Heart'" in err and "'GTV-1'" in err
    assert not (raw / "Dataset705_NSCLCRadiomics" / "dataset.json").exists()


def test_skip_invalid_logs_and_skips(tmp_path, raw, capsys):
    tcia = tmp_path / "in"
    one_patient(tcia, "LUNG1-001")
    one_patient(tcia, "LUNG1-002", rois={"Heart": [(5, rect(1, 3, 1, 3))]}, seed=2)
    write_ct(tcia / "LUNG1-003" / "s" / "ct", phantom((4, 28, 32)), patient="LUNG1-003")      # no RTSTRUCT
    one_patient(tcia, "LUNG1-004", rois={"GTV-1": [(20, rect(1, 3, 1, 3))]}, seed=4)       # below the CT
    seg = Dataset()
    seg.file_meta = FileMetaDataset()
    seg.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    seg.file_meta.MediaStorageSOPClassUID = seg.SOPClassUID = "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation
    seg.file_meta.MediaStorageSOPInstanceUID = seg.SOPInstanceUID = generate_uid()
    seg.Modality, seg.PatientID, seg.SeriesInstanceUID = "SEG", "LUNG1-001", generate_uid()
    seg.save_as(tcia / "LUNG1-001" / "seg.dcm", enforce_file_format=True)
    assert main(["convert", "nsclc", "-i", str(tcia), "-d", "706", "--no-progress"]) == 2
    assert "LUNG1-002" in capsys.readouterr().err
    assert main(["convert", "nsclc", "-i", str(tcia), "-d", "706", "--skip-invalid", "--no-progress"]) == 0
    out = raw / "Dataset706_NSCLCRadiomics"
    log = json.loads((out / "conversion_log.json").read_text())
    status = {case: e["status"] for case, e in log["cases"].items()}
    assert status == {"LUNG1-001": "kept", "LUNG1-002": "skipped", "LUNG1-003": "skipped", "LUNG1-004": "skipped"}
    assert "'Heart'" in log["cases"]["LUNG1-002"]["reason"]
    assert "no RTSTRUCT" in log["cases"]["LUNG1-003"]["reason"]
    assert "outside the CT" in log["cases"]["LUNG1-004"]["reason"]
    assert log["ignored_modalities"] == {"SEG": 1}
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 1
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == ["LUNG1-001_0000.nii.gz"]


def test_resume_overwrite_and_id_clash(tmp_path, raw, capsys):
    tcia = tmp_path / "in"
    one_patient(tcia, "LUNG1-001")
    one_patient(tcia, "LUNG1-002", seed=2)
    args = ["convert", "nsclc", "-i", str(tcia), "-d", "707", "--no-progress"]
    assert main(args) == 0
    out = raw / "Dataset707_NSCLCRadiomics"
    labels = {c: out / "labelsTr" / f"{c}.nii.gz" for c in ("LUNG1-001", "LUNG1-002")}
    before = {c: p.stat().st_mtime_ns for c, p in labels.items()}
    labels["LUNG1-002"].unlink()                                   # as if interrupted before the label
    assert main(args) == 0
    log = json.loads((out / "conversion_log.json").read_text())["cases"]
    assert log["LUNG1-001"]["status"] == "kept" and log["LUNG1-002"]["status"] == "converted"
    assert labels["LUNG1-001"].stat().st_mtime_ns == before["LUNG1-001"]
    assert main(args + ["--overwrite"]) == 0
    assert labels["LUNG1-001"].stat().st_mtime_ns != before["LUNG1-001"]
    assert json.loads((out / "conversion_log.json").read_text())["cases"]["LUNG1-001"]["status"] == "converted"
    capsys.readouterr()
    assert main(args + ["--name", "Other"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(args + ["--name", "Other", "--overwrite"]) == 0
    assert not out.exists() and (raw / "Dataset707_Other" / "dataset.json").is_file()


def chest(shape=(14, 48, 48)):
    """Chest-like HU volume for 7 mm pixels / 10 mm slices: body ellipse, two air-filled lungs."""
    k, r, c = np.mgrid[: shape[0], : shape[1], : shape[2]].astype(float)
    x, y, z = (c - 23.5) * 7.0, (r - 23.5) * 7.0, (k - 6.5) * 10.0
    hu = np.full(shape, -1000)
    hu[(x / 150) ** 2 + (y / 110) ** 2 <= 1] = 40
    for cx in (-70.0, 70.0):
        hu[((x - cx) / 45) ** 2 + (y / 70) ** 2 + (z / 60) ** 2 <= 1] = -850
    return hu


def test_lung_masks_threshold(tmp_path, raw):
    tcia = tmp_path / "in"
    hu = chest()
    ct = write_ct(tcia / "LUNG1-001" / "s" / "ct", hu, origin=(-160.0, -170.0, -500.0), spacing_rc=(7.0, 7.0),
                  dz=10.0, slope=1.0)
    write_rtstruct(tcia / "LUNG1-001" / "s" / "rt" / "1-1.dcm", ct, {"GTV-1": [(6, rect(20, 24, 12, 15))]},
                   reference=False)   # no series reference: matched as the patient's only CT series
    assert main(["convert", "nsclc", "-i", str(tcia), "-d", "708", "--lung-masks", "threshold",
                 "--no-progress"]) == 0
    out = raw / "Dataset708_NSCLCRadiomics"
    image = sitk.ReadImage(str(out / "imagesTr" / "LUNG1-001_0000.nii.gz"))
    lung = sitk.ReadImage(str(out / "lungmasksTr" / "LUNG1-001.nii.gz"))
    for get in ("GetOrigin", "GetSpacing", "GetDirection", "GetSize"):
        assert np.allclose(getattr(lung, get)(), getattr(image, get)())
    mask = sitk.GetArrayFromImage(lung)
    assert set(np.unique(mask)) == {0, 1, 2}
    air_lungs = hu == -850
    assert (mask > 0)[air_lungs].mean() > 0.9 and not mask[hu == 40].any()
    cols = np.nonzero(mask)[2]
    assert cols[mask[mask > 0] == 1].mean() < cols[mask[mask > 0] == 2].mean()  # 1 = right = patient -x
    log = json.loads((out / "conversion_log.json").read_text())["cases"]["LUNG1-001"]
    assert log["lung_mask_backend"] == "threshold" and log["rtstruct_match"] == "only CT series"
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(out), num_processes=1)


def test_cli_validation(tmp_path, raw, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    cases = [(["-i", str(tmp_path / "nope"), "-d", "709"], "input folder not found"),
             (["-i", str(empty), "-d", "709"], "no DICOM files"),
             (["-i", str(empty), "-d", "1000"], "1..999"),
             (["-i", str(empty), "-d", "709", "--lung-masks", "lungmask", "--lungmask-weights",
               str(tmp_path / "w.pth")], "weights file not found")]
    for extra, message in cases:
        assert main(["convert", "nsclc", *extra, "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    monkeypatch.delenv("nnUNet_raw")
    assert main(["convert", "nsclc", "-i", str(empty), "-d", "709"]) == 2
    assert "nnUNet_raw is not set" in capsys.readouterr().err
