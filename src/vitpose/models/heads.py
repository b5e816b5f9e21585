"""Heatmap decoders of ViTPose: the classic (deconvolution) and the simple (upsample) decoder.

Mirrors the official `TopdownHeatmapSimpleHead` as used by the ViTPose configs
(vitpose-reference §1.6, §1.7). Attribute names equal the official checkpoint keys
(`deconv_layers.{0,1,3,4}`, `final_layer`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .precision import outside_autocast

__all__ = ["HeatmapHead"]


class HeatmapHead(nn.Module):
    """Feature map `[B, C, h, w]` -> heatmaps `[B, K, H, W]`.

    Classic decoder (``num_deconv_layers=2``): two blocks of ConvTranspose2d (kernel 4, stride 2,
    padding 1, no bias) + BatchNorm2d + ReLU, then a 1x1 conv: 16x12 -> 64x48.

    Simple decoder (``num_deconv_layers=0, upsample=4, final_conv_kernel=3``): ReLU on the
    features, bilinear x4 upsampling (align_corners=False), then a 3x3 conv.

    Args:
        in_channels: backbone width C.
        out_channels: number of keypoints K.
        num_deconv_layers: 0 (simple) or the number of deconvolution blocks (classic: 2).
        num_deconv_filters: output channels of each deconvolution.
        num_deconv_kernels: kernel of each deconvolution (4, 3 or 2).
        final_conv_kernel: 1 or 3 (padding 0 or 1).
        upsample: bilinear upsampling factor applied to ``relu(features)`` first (0 = none).
    """

    #: runs outside autocast, see `vitpose.models.precision`
    FLOAT32_CHILDREN = ("final_layer",)

    def __init__(self, in_channels: int, out_channels: int, num_deconv_layers: int = 2,
                 num_deconv_filters: Sequence[int] = (256, 256),
                 num_deconv_kernels: Sequence[int] = (4, 4), final_conv_kernel: int = 1,
                 upsample: int = 0) -> None:
        super().__init__()
        if num_deconv_layers not in (0, len(num_deconv_filters)) or \
                len(num_deconv_filters) != len(num_deconv_kernels):
            raise ValueError("num_deconv_layers, num_deconv_filters and num_deconv_kernels disagree")
        if final_conv_kernel not in (1, 3):
            raise ValueError(f"final_conv_kernel must be 1 or 3, got {final_conv_kernel}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.upsample = int(upsample)
        self.num_deconv_layers = num_deconv_layers
        if num_deconv_layers > 0:
            layers: list[nn.Module] = []
            channels = in_channels
            for filters, kernel in zip(num_deconv_filters, num_deconv_kernels):
                padding, output_padding = {4: (1, 0), 3: (1, 1), 2: (0, 0)}[kernel]
                layers += [
                    nn.ConvTranspose2d(channels, filters, kernel, stride=2, padding=padding,
                                       output_padding=output_padding, bias=False),
                    nn.BatchNorm2d(filters),
                    nn.ReLU(inplace=True),
                ]
                channels = filters
            self.deconv_layers: nn.Module = nn.Sequential(*layers)
        else:
            self.deconv_layers = nn.Identity()
            channels = in_channels
        self.final_layer = nn.Conv2d(channels, out_channels, final_conv_kernel,
                                     padding=(final_conv_kernel - 1) // 2)
        self.init_weights()

    @property
    def is_simple(self) -> bool:
        return self.num_deconv_layers == 0

    def init_weights(self) -> None:
        """Official init: deconv and final conv weights N(0, 0.001), biases 0, BN 1/0 (nothing
        on the ``meta`` device, as `ViT.init_weights`)."""
        if self.final_layer.weight.is_meta:
            return
        for m in self.modules():
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return outside_autocast(self.final, self.body(x), self.final_layer.weight.dtype)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """Features -> the input of `final`: ReLU and upsampling (simple decoder) or the
        deconvolution blocks (classic decoder)."""
        if self.upsample > 0:
            x = F.relu(x)
            if self.num_deconv_layers == 0:
                return x  # the upsampling is folded into `final` (`_upsample_conv`)
            x = F.interpolate(x, scale_factor=self.upsample, mode="bilinear", align_corners=False)
        return self.deconv_layers(x)

    def final(self, x: torch.Tensor) -> torch.Tensor:
        """The layer that makes the heatmaps (float32 under autocast, `models.precision`; the
        engines that split the network keep it float32 too)."""
        if self.upsample > 0 and self.num_deconv_layers == 0:
            return self._upsample_conv(x)
        return self.final_layer(x)

    def _upsample_conv(self, x: torch.Tensor) -> torch.Tensor:
        """``final_layer(interpolate(x))`` computed as ``sum_d shift_d(interpolate(W_d x)) + b``.

        Bilinear upsampling acts on each channel alike, so it commutes with the channel mixing
        of each kernel tap ``W_d`` (a 1x1 convolution); zero padding commutes with both. The
        k*k*K tap outputs are upsampled instead of the C input channels (153 instead of 768
        maps for ViTPose-B with K=17, k=3): fewer FLOPs and much less memory in the simple
        decoder, the same result up to float rounding.
        """
        conv = self.final_layer
        k = conv.kernel_size[0]
        out_ch = conv.out_channels
        taps = conv.weight.permute(2, 3, 0, 1).reshape(k * k * out_ch, -1, 1, 1)
        y = F.interpolate(F.conv2d(x, taps), scale_factor=self.upsample, mode="bilinear",
                          align_corners=False)
        b, _, h, w = y.shape
        p = k // 2
        y = F.pad(y.view(b, k * k, out_ch, h, w), (p, p, p, p))
        out = y[:, 0, :, 0:h, 0:w]
        for t in range(1, k * k):
            i, j = divmod(t, k)
            out = out + y[:, t, :, i:i + h, j:j + w]
        if conv.bias is not None:
            out = out + conv.bias.view(1, -1, 1, 1).to(out.dtype)
        return out
