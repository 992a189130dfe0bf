"""Seeded synthetic phantoms (chest CT, brain MR, lung nodule with raters, head-and-neck PET/CT)."""
