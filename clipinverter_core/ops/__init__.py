"""Hot ops of the generator, each with a reference twin that follows the official formulation."""
from .bias_act import fused_leaky_relu
from .upfirdn2d import upfirdn2d

__all__ = ["fused_leaky_relu", "upfirdn2d"]
