"""Pure numpy / torch building blocks with no nnU-Net import (metrics, entropy, warps, losses, ...)."""
