"""Converters from public data sets (NSCLC-Radiomics, BraTS, LIDC-IDRI, HECKTOR) to nnU-Net raw datasets."""
