"""Writes a sample face crop: the astronaut portrait that scikit-image ships (public domain, NASA)."""
import sys

from PIL import Image
from skimage import data

# A square around the face, roughly as FFHQ alignment frames it (until the alignment step does it properly).
FACE_BOX = (125, 20, 325, 220)

Image.fromarray(data.astronaut()).crop(FACE_BOX).resize((256, 256), Image.LANCZOS).save(sys.argv[1])
print(f"wrote {sys.argv[1]}")
