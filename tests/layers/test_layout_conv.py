"""LayoutConv2d: nn.Conv2d's values, keys and arguments; a channel-last CPU input is convolved in NCHW memory."""
import torch
from torch import nn

from vision_ssm.layers.layout_conv import LayoutConv2d


def test_same_values_and_keys_as_conv2d_and_no_weight_relayout():
    torch.manual_seed(0)
    ref = nn.Conv2d(8, 16, 3, stride=2, padding=1)
    conv = LayoutConv2d(8, 16, 3, stride=2, padding=1)
    conv.load_state_dict(ref.state_dict())
    assert conv.state_dict().keys() == ref.state_dict().keys()
    x = torch.randn(2, 8, 10, 10).contiguous(memory_format=torch.channels_last)
    y = conv(x)
    assert y.is_contiguous()  # it ran on the contiguous copy of x
    torch.testing.assert_close(y, ref(x.contiguous()), rtol=0, atol=0)
    torch.testing.assert_close(y, ref(x), rtol=1e-5, atol=1e-5)  # oneDNN's channel-last path: same up to rounding
    assert conv.weight.is_contiguous()  # the parameter itself is never re-laid out
