"""Writes a sample photo with a face: the astronaut portrait that scikit-image ships (public domain, NASA)."""
import sys

from PIL import Image
from skimage import data

Image.fromarray(data.astronaut()).save(sys.argv[1])
print(f"wrote {sys.argv[1]}")
