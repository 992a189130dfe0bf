"""The click model must follow clicks: a tiny 2D click-prompt network (ClickPromptTrainer's architecture, split
prompt channels) trained inside the test with the project's click simulation -- stage 1 (clicks from the
reference, SimulateClicksTransform) then stage 3 (clicks in its own errors, round by round,
error_click_prompts) -- on phantoms where the image cannot tell a lesion from a decoy: every blob is bright or
dim; bright blobs are lesions with probability 0.8, dim ones with 0.2. The automatic branch therefore segments
bright blobs and misses dim lesions; only a click can say which blob is which. A positive click in a missed
(dim) lesion must raise the foreground probability there by >= 0.3 on average and a negative click on a bright
decoy must lower it. If the prompts were ignored (or cancelled, or lost on the way to the network), neither
would move."""
import copy

import numpy as np
import torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_ext.methods.interactive.click_prompt_trainer import ClickPromptTrainer, error_click_prompts
from nnunet_ext.methods.interactive.click_simulation import region_centre
from nnunet_ext.methods.interactive.click_transform import SimulateClicksTransform
from nnunet_ext.methods.interactive.clicks import rasterize_voxels

SIZE, RADIUS = 40, 4
CELLS = [(10, 10), (10, 30), (30, 10), (30, 30)]

ARCH = {
    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "arch_kwargs": {
        "n_stages": 3, "features_per_stage": [12, 24, 32], "conv_op": "torch.nn.modules.conv.Conv2d",
        "kernel_sizes": [[3, 3]] * 3, "strides": [[1, 1], [2, 2], [2, 2]], "n_conv_per_stage": [2, 2, 2],
        "n_conv_per_stage_decoder": [1, 1], "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
        "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True}},
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
}


def _plans():
    return {"dataset_name": "Dataset999_X", "plans_name": "p", "original_median_spacing_after_transp": [1, 1],
            "original_median_shape_after_transp": [SIZE, SIZE], "image_reader_writer": "SimpleITKIO",
            "transpose_forward": [0, 1], "transpose_backward": [0, 1], "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel": {},
            "configurations": {"2d": {
                "data_identifier": "x", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
                "patch_size": [SIZE, SIZE], "median_image_size_in_voxels": [SIZE, SIZE], "spacing": [1, 1],
                "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
                "resampling_fn_data": "resample_data_or_seg_to_shape",
                "resampling_fn_seg": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": {},
                "resampling_fn_seg_kwargs": {}, "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities_kwargs": {}, "architecture": copy.deepcopy(ARCH), "batch_dice": False}}}


def phantom(rng):
    """(image (1, S, S), label (S, S), blobs [(centre, bright, lesion)])."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    image = rng.normal(0, 0.3, (SIZE, SIZE)).astype(np.float32)
    label = np.zeros((SIZE, SIZE), np.int64)
    blobs = []
    for cy, cx in CELLS:
        c = (cy + int(rng.integers(-3, 4)), cx + int(rng.integers(-3, 4)))
        disc = (yy - c[0]) ** 2 + (xx - c[1]) ** 2 <= RADIUS ** 2
        bright = bool(rng.uniform() < 0.5)
        lesion = bool(rng.uniform() < (0.8 if bright else 0.2))
        image[disc] += 2.0 if bright else 1.0
        label[disc] = int(lesion)
        blobs.append((c, bright, lesion, disc))
    return image[None], label, blobs


def _batch(rng, n):
    items = [phantom(rng) for _ in range(n)]
    return (torch.from_numpy(np.stack([i for i, _, _ in items])),
            torch.from_numpy(np.stack([lab for _, lab, _ in items])))


def test_tiny_model_follows_positive_and_negative_clicks():
    torch.manual_seed(0)
    np.random.seed(0)
    rng = np.random.default_rng(0)
    torch.set_num_threads(1)
    pm = PlansManager(_plans())
    net = ClickPromptTrainer.build_network_architecture(pm, pm.get_configuration("2d"), 1, 2, False)
    assert net.n_prompt_channels == 2  # GTV positive + negative
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    stage1 = SimulateClicksTransform((1,), p_prompt=0.5, radius=3)

    def predict_labels(x):
        net.eval()
        with torch.no_grad():
            out = net(x).argmax(1).numpy()
        net.train()
        return out

    for step in range(260):
        image, label = _batch(rng, 12)
        if step < 100:  # stage 1: clicks from the reference (p = 0.5)
            x = torch.stack([stage1(image=image[b], segmentation=label[b][None])["image"] for b in range(12)])
        else:  # stage 3: clicks in the network's own errors, 1-2 rounds; a quarter automatic
            x = torch.cat([image, torch.zeros(12, 2, SIZE, SIZE)], 1)
            rounds = [0 if b % 4 == 0 else 1 + b % 2 for b in range(12)]
            x = error_click_prompts(predict_labels, x, label.numpy(), (1,), rounds, 5, (1.0, 1.0), 29,
                                    "largest", rng, 3.0)
        loss = torch.nn.functional.cross_entropy(net(x), label)
        opt.zero_grad()
        loss.backward()
        opt.step()

    net.eval()
    eval_rng = np.random.default_rng(123)
    gains, drops = [], []
    while len(gains) < 12 or len(drops) < 12:
        image, label, blobs = phantom(eval_rng)
        x = torch.from_numpy(image)[None]
        with torch.no_grad():
            auto = torch.softmax(net(x), 1)[0, 1].numpy()
        for c, bright, lesion, disc in blobs:
            if bright == lesion:
                continue  # what the image says is right: no click needed
            centre = region_centre(disc)
            prompt = rasterize_voxels([(0, centre, lesion)], (SIZE, SIZE), 1, 3.0, layout="split")
            with torch.no_grad():
                p = torch.softmax(net(torch.cat([x, torch.from_numpy(prompt)[None]], 1)), 1)[0, 1].numpy()
            (gains if lesion else drops).append(float(p[centre] - auto[centre]))
    assert np.mean(gains) >= 0.3, f"positive clicks in missed lesions raise p by {np.mean(gains):.3f} on average"
    assert np.mean(drops) <= -0.3, f"negative clicks on decoys change p by {np.mean(drops):.3f} on average"
    assert sum(g > 0 for g in gains) >= 0.8 * len(gains) and sum(d < 0 for d in drops) >= 0.8 * len(drops)
