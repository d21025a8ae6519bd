"""ArcFace IR-SE50 (TreB1eN's InsightFace_Pytorch layout, the file `model_ir_se50.pth`), input 112x112.

The body is the IR-SE50 of our e4e backbone (networks/e4e.py: the same units, the same key names); the
head flattens the 7x7 map into a 512-d embedding:
    input_layer: Conv3x3(3, 64, no bias) -> BatchNorm2d -> PReLU
    body:        24 IR-SE units (IR_SE50_STAGES)
    output_layer: BatchNorm2d(512) -> Dropout -> Flatten -> Linear(512*7*7, 512) -> BatchNorm1d(512)
    forward:     the embedding divided by its L2 norm (no epsilon, as the official `l2_norm`)
Keys: `input_layer.*`, `body.N.*`, `output_layer.{0,3,4}.*`.
"""
from __future__ import annotations

import torch
from torch import nn

from .e4e import ir_se50_trunk

ARCFACE_INPUT = 112
EMBED_DIM = 512
OUTPUT_SIDE = 7            # 112 / 2**4: four stride-2 stages
DROP_RATIO = 0.6           # the official IDLoss's value; inactive in eval mode


class ArcFaceIRSE50(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layer, self.body = ir_se50_trunk()
        self.output_layer = nn.Sequential(nn.BatchNorm2d(512), nn.Dropout(DROP_RATIO), nn.Flatten(),
                                          nn.Linear(512 * OUTPUT_SIDE ** 2, EMBED_DIM), nn.BatchNorm1d(EMBED_DIM))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, 112, 112) -> (B, 512), unit L2 norm."""
        x = self.output_layer(self.body(self.input_layer(x)))
        return x / torch.linalg.vector_norm(x, dim=1, keepdim=True)
