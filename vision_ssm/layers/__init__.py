"""Floor 2: nn.Modules built on :mod:`vision_ssm.ops` (one family of blocks per file)."""
from .hss import HSSBlock
from .linear2d import Linear2d
from .lss import LSSLayer, LSSModule, MambaUPNet
from .mambavision_mixer import MambaVisionAttention, MambaVisionMixer
from .mambavision_stage import (
    MambaVisionBlock,
    MambaVisionConvBlock,
    MambaVisionStage,
    MambaVisionStem,
    window_partition,
    window_reverse,
)
from .mff_oce import MFF_OCE, MFFOCE
from .patch_expand import PatchExpand2D
from .ss2d import SS2D, ScanIndex
from .vss import (
    Mlp,
    PatchMerging2D,
    Permute,
    VMambaHead,
    VMambaStage,
    VSSBlock,
    vmamba_downsample,
    vmamba_norm,
    vmamba_patch_embed,
)
from .weight_init import init_linear_layernorm
