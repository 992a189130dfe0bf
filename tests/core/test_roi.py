"""ROI boxes, crop and paste (exact round trips, borders, margins)."""
import numpy as np
import pytest

from nnunet_ext.core.roi import crop, paste, roi_boxes


def test_boxes_exact_with_and_without_margin():
    m = np.zeros((20, 30, 40), np.uint8)
    m[5:8, 10:12, 20:25] = 1
    m[0:2, 0:3, 37:40] = 1               # touches three borders
    assert roi_boxes(m, 0) == [(slice(0, 2), slice(0, 3), slice(37, 40)), (slice(5, 8), slice(10, 12), slice(20, 25))]
    assert roi_boxes(m, 16) == [(slice(0, 18), slice(0, 19), slice(21, 40)),
                                (slice(0, 20), slice(0, 28), slice(4, 40))]
    assert roi_boxes(m, 2, per_component=False) == [(slice(0, 10), slice(0, 14), slice(18, 40))]
    assert roi_boxes(np.zeros((4, 4, 4)), 16) == []
    # diagonal neighbours are one component (26-connectivity)
    d = np.zeros((5, 5, 5), np.uint8)
    d[1, 1, 1] = d[2, 2, 2] = 1
    assert roi_boxes(d) == [(slice(1, 3),) * 3]
    with pytest.raises(ValueError):
        roi_boxes(m, -1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crop_paste_round_trip_random(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(8, 24, size=3))
    x = rng.normal(size=shape).astype(np.float32)
    m = np.zeros(shape, np.uint8)
    for _ in range(4):                   # random blobs, some at the borders
        lo = [int(rng.integers(0, s)) for s in shape]
        m[tuple(slice(a, a + int(rng.integers(1, 4))) for a in lo)] = 1
    boxes = roi_boxes(m, 16) + roi_boxes(m, 0)
    assert boxes
    for box in boxes:
        assert all(0 <= b.start < b.stop <= s for b, s in zip(box, shape))
        c = crop(x, box)
        assert c.shape == tuple(b.stop - b.start for b in box)
        other = rng.normal(size=shape).astype(np.float32)
        before = other.copy()
        res = paste(other, c, box)
        assert res is other
        assert np.array_equal(res[box], x[box])           # restored inside the box
        outside = np.ones(shape, bool)
        outside[box] = False
        assert np.array_equal(res[outside], before[outside])  # untouched outside
        fresh = paste(shape, c, box, fill=-7)
        assert fresh.dtype == np.float32 and np.array_equal(fresh[box], x[box]) and np.all(fresh[outside] == -7)


def test_crop_is_a_copy_and_channels_and_shape_check():
    x = np.arange(2 * 4 * 5 * 6).reshape(2, 4, 5, 6)
    box = (slice(1, 3), slice(0, 5), slice(4, 6))
    c = crop(x, box)
    assert c.shape == (2, 2, 5, 2)
    c[...] = -1
    assert x.min() == 0
    y = np.zeros_like(x)
    paste(y, crop(x, box), box)
    assert np.array_equal(y[:, 1:3, :, 4:6], x[:, 1:3, :, 4:6]) and y.sum() == x[:, 1:3, :, 4:6].sum()
    with pytest.raises(ValueError, match="does not match"):
        paste(y, np.zeros((2, 2, 2)), box)
