"""CLIPInverter: text-driven editing of real face photos in one forward pass (Baykal et al., ACM TOG 2023).

Data flow: photo -> aligned 256x256 face -> e4e inversion w -> CLIPAdapter edit w_hat -> CLIPRemapper
-> StyleGAN2 image. This package is plain PyTorch and never imports ComfyUI.
"""
__version__ = "0.1.0"


def __getattr__(name):  # keep `import clipinverter_core` light; load the pipeline on first use
    if name in ("CLIPInverter", "Latent", "EditResult"):
        from . import pipeline
        return getattr(pipeline, name)
    raise AttributeError(name)
