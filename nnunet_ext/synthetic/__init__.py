"""Seeded synthetic phantoms (chest CT, brain MR, lung nodule with raters, head-and-neck PET/CT).

Public API (imported lazily, so ``import nnunet_ext.synthetic`` stays cheap)::

    write_dataset(kind, dataset_id, num_train, num_test=0, seed=0, size=None, name=None,
                  overwrite=False, raw_dir=None, progress=True, **kind_options) -> Path
    generate_chest_case(rng, size_zyx) / generate_brain_case(rng, size_zyx)
    generate_nodule_case(rng, size_zyx, raters=4) / generate_headneck_case(rng, size_zyx)  -> PhantomCase
    KINDS  (kind -> KindSpec: generator, default name, channel_names, labels, extra dataset.json fields)
"""
from __future__ import annotations

from nnunet_ext._lazy import lazy_exports

_LAZY = {
    "write_dataset": "nnunet_ext.synthetic.dataset",
    "PhantomCase": "nnunet_ext.synthetic.dataset",
    "KINDS": "nnunet_ext.synthetic.dataset",
    "case_seeds": "nnunet_ext.synthetic.dataset",
    "generate_chest_case": "nnunet_ext.synthetic.chest",
    "generate_brain_case": "nnunet_ext.synthetic.brain",
    "generate_nodule_case": "nnunet_ext.synthetic.nodule",
    "generate_headneck_case": "nnunet_ext.synthetic.headneck",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
