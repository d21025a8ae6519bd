"""Face alignment as the model expects it (the FFHQ recipe) and paste-back into the original photo.

    photo -> detect.detect_faces (dlib HOG + 68 landmarks) -> geometry.ffhq_quad -> warp.align_face -> crop
    edited crop + FaceAlignment -> paste.paste_back (inverse warp, feathered mask) -> photo

The geometry is the official preprocessing's (CLIPInverter `align_faces_parallel.py`, from the FFHQ
dataset tools): the eye and mouth centres define an oriented square (the quad); a face much larger than the
output is first shrunk by an integer factor with PIL's antialiased Lanczos filter; a quad that reaches the
photo's edge is completed by reflection, blurred towards the outside; the quad is sampled bilinearly at the
output size. Every step after detection runs in torch on the caller's device (kornia does the warp).

Files, one per step: detect.py, geometry.py, resample.py + warp.py (the crop), paste.py; crops.py holds the
`align` entry point over a batch of photos.
"""
from .crops import align, to_unit_tensor
from .detect import (DETECT_MAX_SIDE, PREDICTOR_FILE, UPSAMPLE_MAX_SIDE, Face, FaceFilter, FaceNotFoundError,
                     _dlib_models, detect_faces, predictor_path)
from .geometry import (BLUR_FRACTION, BORDER_FRACTION, CENTRE_SHIFT, EYE_SPAN, LANCZOS_LOBES, LEFT_EYE,
                       MIN_BORDER, MOUTH_LEFT, MOUTH_RIGHT, MOUTH_SPAN, PAD_FRACTION, RIGHT_EYE, Alignment,
                       FaceAlignment, ffhq_quad)
from .paste import face_mask, paste_back, paste_back_with_mask, paste_edits
from .warp import align_face

__all__ = ["Alignment", "Face", "FaceAlignment", "FaceFilter", "FaceNotFoundError", "align", "align_face", "detect_faces",
           "face_mask", "ffhq_quad", "paste_back", "paste_back_with_mask", "paste_edits", "predictor_path", "to_unit_tensor"]
