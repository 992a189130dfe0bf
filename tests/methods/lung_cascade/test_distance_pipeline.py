"""DistanceTransformTrainer's boundary weights from the data pipeline (batchgeneratorsv2 transform after nnU-Net's
deep-supervision downsampling) are exactly the weights the loss used to compute per batch, and give the same loss."""
import numpy as np
import torch
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform

from nnunet_ext.methods.lung_cascade.distance_trainer import DistanceWeightedLoss, deep_supervision_spacings
from nnunet_ext.methods.lung_cascade.distance_weights_transform import DistanceWeightTransform, split_weights

SCALES = [[1.0, 1.0, 1.0], [1.0, 0.5, 0.5], [0.5, 0.25, 0.25]]
SPACING = (2.5, 0.8, 0.8)


def _sample(rng, shape=(8, 32, 32)):
    seg = np.zeros((1,) + shape, np.int16)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    c = rng.uniform(0.3, 0.7, 3) * shape
    seg[0][((z - c[0]) * 2.5) ** 2 + ((y - c[1]) * 0.8) ** 2 + ((x - c[2]) * 0.8) ** 2 < rng.uniform(5, 9) ** 2] = 1
    return torch.from_numpy(seg)


def test_pipeline_weights_equal_the_in_loss_weights_and_give_the_same_loss():
    rng = np.random.default_rng(0)
    spacings = deep_supervision_spacings(SPACING, SCALES)
    pipeline = ComposeTransforms([DownsampleSegForDSTransform(ds_scales=SCALES),
                                  DistanceWeightTransform(spacings, w0=10.0, sigma=5.0)])
    plain = DownsampleSegForDSTransform(ds_scales=SCALES)
    samples = [_sample(rng) for _ in range(2)]
    with_w = [pipeline(segmentation=s, image=torch.zeros((1,) + tuple(s.shape[1:])))["segmentation"] for s in samples]
    without = [plain(segmentation=s)["segmentation"] for s in samples]
    # collate like nnU-Net's data loader (per output: stack the samples)
    target_w = [torch.stack([w[i] for w in with_w]) for i in range(len(SCALES))]
    target = [torch.stack([w[i] for w in without]) for i in range(len(SCALES))]
    assert all(t.shape[1] == 2 and t.dtype == torch.float32 for t in target_w)
    labels, weights = split_weights(target_w)
    loss = DistanceWeightedLoss(spacings, 10.0, 5.0, weight_factors=(0.57, 0.29, 0.14))
    for i, (lab, t) in enumerate(zip(labels, target)):
        assert torch.equal(lab, t) and lab.dtype == torch.int16
        expected = loss.weights(t, i)                 # what the loss computed per batch before
        assert torch.equal(weights[i], expected[:, 0] if expected.ndim == t.ndim else expected)
        assert float(weights[i].max()) > 1.0
    torch.manual_seed(0)
    outputs = [torch.randn((2, 2) + tuple(t.shape[2:]), requires_grad=True) for t in target]
    before = loss(outputs, target)
    loss.batch_weights = weights
    after = loss(outputs, labels)
    loss.batch_weights = None
    assert torch.equal(before, after)


def test_trainer_appends_the_transform_and_splits_the_targets():
    from nnunet_ext.methods.lung_cascade.distance_trainer import DistanceTransformTrainer

    assert "get_training_transforms" in DistanceTransformTrainer.__dict__
    t = _sample(np.random.default_rng(1))
    out = DistanceWeightTransform([SPACING])(segmentation=t)["segmentation"]
    lab, w = split_weights(out[None])
    assert torch.equal(lab[0], t) and w.shape == (1,) + tuple(t.shape[1:])
