# Shim imported by nnU-Net's trainer lookup (directory listed in nnUNet_extTrainer by nnunet_ext's
# start-up hook). nnU-Net purges this module after the lookup; the classes live in nnunet_ext.trainers.
from nnunet_ext.trainers.registry import load_all as _load_all

globals().update(_load_all())
