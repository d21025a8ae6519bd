"""The networks of CLIPInverter in plain PyTorch, named as in the official checkpoints."""
from .adapter import LEVELS, CLIPAdapter
from .e4e import Encoder4Editing, Features, head_width_of
from .stylegan2 import Generator, channels_of, n_latent_for, size_for

__all__ = ["LEVELS", "CLIPAdapter", "Encoder4Editing", "Features", "head_width_of", "Generator", "channels_of",
           "n_latent_for", "size_for"]
