"""Floor 2: nn.Modules built on :mod:`vision_ssm.ops` (one family of blocks per file).

Option rule (see :mod:`vision_ssm.layers._options`): mixers (``SS2D``, ``MambaVisionMixer``) take mamba-ssm's
names (``d_model``, ``d_state``, ...) and ``backend``; blocks take ``dim``, ``ssm_cfg`` (a dict of mixer
arguments), explicit overrides (``d_state``, ``scan``, ``directions``, ``backend``), ``norm_layer`` as a
name or a class, and state their layout as ``channels_first``.
"""
from ._options import merge_ssm_cfg
from .fusion_mamba import (
    DSSF,
    FMB,
    FUSION_MAMBA_SSM_DEFAULTS,
    SSCS,
    CrossModalSS2D,
    DSSFStack,
    channel_swap,
)
from .hss import MAMBAAD_SSM_DEFAULTS, HSSBlock
from .linear2d import Linear2d
from .lss import LSSLayer, LSSModule, MambaUPNet
from .mamba import Mamba
from .mambaalign import (
    AAFBlock,
    AlignmentAwareFusion,
    CausalConvMixer,
    CrossMambaInteraction,
    PerModalMamba,
    QSVSSBlock,
)
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
from .norm import get_norm
from .patch_expand import PatchExpand2D
from .ss2d import SS2D, ScanIndex, init_ss2d_core_, ss2d_core
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
from .weight_init import A_log_init, D_init, init_dt_proj_, init_linear_layernorm
