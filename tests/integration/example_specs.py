"""The example workflows, as graphs to build in the real frontend (scripts/make_example_workflows.py builds them
there and saves what the frontend serialises, plus a .jpg of the canvas)."""
from __future__ import annotations

BUNDLE = "clipinverter_faces.safetensors"
CHECKPOINT = "v1-5-pruned-emaonly-fp16.safetensors"
CHECKPOINT_MODEL = {"name": CHECKPOINT, "directory": "checkpoints",
                    "url": "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/"
                           "v1-5-pruned-emaonly-fp16.safetensors"}
FACE, REFERENCE = "face.png", "reference.png"  # what Load Image nodes name; users pick their own
PHOTO = "photo.png"  # a whole photo with a face (not aligned), for the Align Face / Paste Back example
CLIP = "clip.mp4"    # a short video with a moving face and a sound track, for the video example
# Core Batch Images (BatchImagesNode, which replaces the deprecated ImageBatch): its first two autogrow slots
BATCH_SLOTS = ("images.image0", "images.image1")


def _loader(x=40, y=40):
    # No "models" entry: no link downloads the bundle (Load Inverter converts it from the official files on the first
    # run), and the frontend's missing-model dialog would offer to download a web page.
    return {"key": "loader", "type": "CLIPInverterLoader", "pos": [x, y],
            "widgets": {"bundle": BUNDLE, "device": "default", "precision": "fp32"}}


def _image(key, name, x, y):
    return {"key": key, "type": "LoadImage", "pos": [x, y], "widgets": {"image": name}}


def _edit_chain(embedding_key, x=780, y=40, prefix="clipinverter/edit", faces=("face", "IMAGE"),
                model=("loader", "model")):
    """Invert with CLIPAdapter -> Remap Latent -> StyleGAN Decode (-> Save Image with a prefix); `model`: the
    (node, output) their model comes from (the embedding's encoder always takes the loader's)."""
    nodes = [
        {"key": "invert", "type": "CLIPInverterInvert", "pos": [x, y],
         "widgets": {"strength": 1.0, "coarse": True, "medium": True, "fine": True}},
        {"key": "remap", "type": "CLIPInverterRemap", "pos": [x + 340, y], "widgets": {"strength": 1.0}},
        {"key": "decode", "type": "CLIPInverterDecode", "pos": [x + 680, y]},
    ]
    links = [["loader", "model", embedding_key, "model"], [*model, "invert", "model"], [*faces, "invert", "image"],
             [embedding_key, "embedding", "invert", "embedding"], [*model, "remap", "model"],
             ["invert", "latent", "remap", "latent"], [embedding_key, "embedding", "remap", "embedding"],
             [*model, "decode", "model"], ["remap", "latent", "decode", "latent"]]
    if prefix:
        nodes.append({"key": "save", "type": "SaveImage", "pos": [x + 1000, y], "size": [420, 470],
                      "widgets": {"filename_prefix": prefix}})
        links.append(["decode", "image", "save", "images"])
    return nodes, links


def text_edit():
    chain, links = _edit_chain("text", prefix="clipinverter/text_edit")
    return {"nodes": [_loader(), _image("face", FACE, 40, 240),
                      {"key": "text", "type": "CLIPInverterEncodeText", "pos": [400, 40], "size": [340, 160],
                       "widgets": {"text": "this person has blonde hair and a beard"}}] + chain, "links": links}


def reference_edit():
    chain, links = _edit_chain("ref_embedding", prefix="clipinverter/reference_edit")
    return {"nodes": [_loader(), _image("face", FACE, 40, 240), _image("reference", REFERENCE, 400, 240),
                      {"key": "ref_embedding", "type": "CLIPInverterEncodeImage", "pos": [400, 40],
                       "widgets": {"norm_matching": "match text"}}] + chain,
            "links": links + [["reference", "IMAGE", "ref_embedding", "image"]]}


def several_prompts():
    """Three prompts over one face beside its reconstruction, scored by Edit Metrics (its table in Preview Any)."""
    chain, links = _edit_chain("text", prefix=None)
    return {"nodes": [_loader(), _image("face", FACE, 40, 240),
                      {"key": "text", "type": "CLIPInverterEncodeText", "pos": [400, 40], "size": [340, 160],
                       "widgets": {"text": "this person has blonde hair\nthis person has a beard\n"
                                           "this person is smiling"}},
                      {"key": "recon", "type": "CLIPInverterInvertOnly", "pos": [780, 330]},
                      {"key": "recon_decode", "type": "CLIPInverterDecode", "pos": [1120, 330]},
                      {"key": "batch", "type": "BatchImagesNode", "pos": [1460, 200]},
                      {"key": "save", "type": "SaveImage", "pos": [1780, 40], "size": [700, 420],
                       "widgets": {"filename_prefix": "clipinverter/several_prompts"}},
                      {"key": "metrics", "type": "CLIPInverterEditMetrics", "pos": [1120, 520], "size": [320, 200],
                       "widgets": {"source_text": "a photo of a face", "arcface": "none"}},
                      {"key": "preview", "type": "PreviewAny", "pos": [1780, 520], "size": [700, 220]}] + chain,
            "links": links + [["loader", "model", "recon", "model"], ["face", "IMAGE", "recon", "image"],
                              ["loader", "model", "recon_decode", "model"], ["recon", "latent", "recon_decode", "latent"],
                              ["recon_decode", "image", "batch", BATCH_SLOTS[0]],
                              ["decode", "image", "batch", BATCH_SLOTS[1]], ["batch", "IMAGE", "save", "images"],
                              ["loader", "model", "metrics", "model"], ["face", "IMAGE", "metrics", "original"],
                              ["decode", "image", "metrics", "edited"], ["text", "embedding", "metrics", "embedding"],
                              ["metrics", "table", "preview", "source"]]}


def diffusion_upscale():
    chain, links = _edit_chain("text", prefix=None)
    return {"nodes": [_loader(), _image("face", FACE, 40, 240),
                      {"key": "text", "type": "CLIPInverterEncodeText", "pos": [400, 40], "size": [340, 160],
                       "widgets": {"text": "this person has blonde hair"}}] + chain + [
        {"key": "ckpt", "type": "CheckpointLoaderSimple", "pos": [780, 330], "widgets": {"ckpt_name": CHECKPOINT},
         "properties": {"models": [CHECKPOINT_MODEL]}},
        {"key": "pos", "type": "CLIPTextEncode", "pos": [1120, 330], "size": [340, 120],
         "widgets": {"text": "a photo of a person, detailed skin, sharp focus"}},
        {"key": "neg", "type": "CLIPTextEncode", "pos": [1120, 490], "size": [340, 120],
         "widgets": {"text": "blurry, lowres, deformed"}},
        {"key": "upscale", "type": "ImageScaleBy", "pos": [1780, 40],
         "widgets": {"upscale_method": "lanczos", "scale_by": 1.5}},
        {"key": "vae_encode", "type": "VAEEncode", "pos": [2100, 40]},
        {"key": "sampler", "type": "KSampler", "pos": [2100, 200],
         "widgets": {"seed": 0, "control_after_generate": "fixed", "steps": 20, "cfg": 5.0, "sampler_name": "euler",
                     "scheduler": "normal", "denoise": 0.3}},
        {"key": "vae_decode", "type": "VAEDecode", "pos": [2440, 40]},
        {"key": "save", "type": "SaveImage", "pos": [2700, 40], "size": [420, 470],
         "widgets": {"filename_prefix": "clipinverter/upscaled"}}],
        "links": links + [["decode", "image", "upscale", "image"], ["upscale", "IMAGE", "vae_encode", "pixels"],
                          ["ckpt", "VAE", "vae_encode", "vae"], ["ckpt", "MODEL", "sampler", "model"],
                          ["ckpt", "CLIP", "pos", "clip"], ["ckpt", "CLIP", "neg", "clip"],
                          ["pos", "CONDITIONING", "sampler", "positive"], ["neg", "CONDITIONING", "sampler", "negative"],
                          ["vae_encode", "LATENT", "sampler", "latent_image"], ["sampler", "LATENT", "vae_decode", "samples"],
                          ["ckpt", "VAE", "vae_decode", "vae"], ["vae_decode", "IMAGE", "save", "images"]]}


def whole_photo():
    chain, links = _edit_chain("text", prefix=None, faces=("align", "aligned"))
    return {"nodes": [_loader(), _image("photo", PHOTO, 40, 240),
                      {"key": "text", "type": "CLIPInverterEncodeText", "pos": [400, 40], "size": [340, 160],
                       "widgets": {"text": "this person has blonde hair"}},
                      {"key": "align", "type": "CLIPInverterAlignFace", "pos": [400, 260],
                       "widgets": {"face_index": 0, "size": 256, "if_no_face": "error"}},
                      {"key": "paste", "type": "CLIPInverterPasteBack", "pos": [1800, 40],
                       "widgets": {"feather": 0.1}},
                      {"key": "save", "type": "SaveImage", "pos": [2120, 40], "size": [420, 470],
                       "widgets": {"filename_prefix": "clipinverter/whole_photo"}}] + chain,
            "links": links + [["photo", "IMAGE", "align", "image"], ["photo", "IMAGE", "paste", "original"],
                              ["decode", "image", "paste", "edited"], ["align", "alignment", "paste", "alignment"],
                              ["paste", "image", "save", "images"]]}


def identity_edit():
    """The whole-photo edit with the generator first tuned to the person (Refine Identity, PTI's photo mode), so
    that the edit keeps who it is; the tuned model does the edit. Align Face cuts the crop at the faces model's 1024,
    the target the tuning reproduces (the encoder gets it resized to 256). Refine Identity needs alexnet-owt-7be5be79.pth
    (LPIPS) in models/clipinverter; steps 0 runs PTI's default (350, stopping at LPIPS 0.06): about a minute on a
    GPU, far longer on a CPU (the tests run it with TEST_WIDGETS' 2 steps)."""
    chain, links = _edit_chain("text", x=1160, prefix=None, faces=("align", "aligned"), model=("refine", "model"))
    return {"nodes": [_loader(), _image("photo", PHOTO, 40, 240),
                      {"key": "text", "type": "CLIPInverterEncodeText", "pos": [400, 40], "size": [340, 160],
                       "widgets": {"text": "this person has blonde hair"}},
                      {"key": "align", "type": "CLIPInverterAlignFace", "pos": [400, 260],
                       "widgets": {"face_index": 0, "size": 1024, "if_no_face": "error"}},
                      {"key": "refine", "type": "CLIPInverterRefineIdentity", "pos": [780, 260],
                       "widgets": {"mode": "photo", "steps": 0, "lpips_stop": 0.06, "lr": 0.0,
                                   "regulariser": "default"}},
                      {"key": "paste", "type": "CLIPInverterPasteBack", "pos": [2180, 40],
                       "widgets": {"feather": 0.1}},
                      {"key": "save", "type": "SaveImage", "pos": [2500, 40], "size": [420, 470],
                       "widgets": {"filename_prefix": "clipinverter/identity_edit"}}] + chain,
            "links": links + [["photo", "IMAGE", "align", "image"], ["loader", "model", "refine", "model"],
                              ["align", "aligned", "refine", "faces"], ["photo", "IMAGE", "paste", "original"],
                              ["decode", "image", "paste", "edited"], ["align", "alignment", "paste", "alignment"],
                              ["paste", "image", "save", "images"]]}


def video_edit():
    """The clip edited streamed: core Load Video -> Edit Video -> core Save Video. The face tracked through the
    clip, edited a chunk of frames at a time, pasted back, written with the clip's frame rate and sound; the frames
    are never all in memory."""
    return {"nodes": [_loader(), {"key": "video", "type": "LoadVideo", "pos": [40, 240], "size": [320, 420],
                                  "widgets": {"file": CLIP}},
                      {"key": "text", "type": "CLIPInverterEncodeText", "pos": [400, 40], "size": [340, 160],
                       "widgets": {"text": "this person has blonde hair"}},
                      {"key": "edit", "type": "CLIPInverterEditVideo", "pos": [780, 40], "size": [360, 520],
                       "widgets": {"strength": 1.0, "remap_strength": 1.0, "face_index": 0,
                                   "face_order": "largest first", "smoothing_mode": "auto", "smoothing": 3.0,
                                   "feather": 0.1, "color_match": 1.0}},
                      {"key": "save", "type": "SaveVideo", "pos": [1180, 40], "size": [420, 520],
                       "widgets": {"filename_prefix": "clipinverter/video_edit"}}],
            "links": [["loader", "model", "text", "model"], ["loader", "model", "edit", "model"],
                      ["video", "VIDEO", "edit", "video"], ["text", "embedding", "edit", "embedding"],
                      ["edit", "video", "save", "video"]]}


def video_frames_edit():
    """ComfyUI's own video nodes around the node chain, for per-frame control: the face tracked through the clip,
    edited in every frame, pasted back, and the frames put back together with the clip's frame rate and sound. The
    graph holds every frame."""
    chain, links = _edit_chain("text", prefix=None, faces=("align", "aligned"))
    return {"nodes": [_loader(), {"key": "video", "type": "LoadVideo", "pos": [40, 240], "size": [320, 420],
                                  "widgets": {"file": CLIP}},
                      {"key": "components", "type": "GetVideoComponents", "pos": [400, 260]},
                      {"key": "text", "type": "CLIPInverterEncodeText", "pos": [400, 40], "size": [340, 160],
                       "widgets": {"text": "this person has blonde hair"}},
                      {"key": "align", "type": "CLIPInverterAlignFace", "pos": [400, 420],
                       "widgets": {"face_index": 0, "size": 256, "if_no_face": "passthrough", "tracking": "on",
                                   "smoothing": 3.0, "hold": 5}},
                      {"key": "paste", "type": "CLIPInverterPasteBack", "pos": [1800, 40],
                       "widgets": {"feather": 0.1, "color_match": 1.0}},
                      {"key": "create", "type": "CreateVideo", "pos": [2120, 40]},
                      {"key": "save", "type": "SaveVideo", "pos": [2440, 40], "size": [420, 520],
                       "widgets": {"filename_prefix": "clipinverter/video_edit"}}] + chain,
            "links": links + [["video", "VIDEO", "components", "video"], ["components", "images", "align", "image"],
                              ["components", "images", "paste", "original"], ["decode", "image", "paste", "edited"],
                              ["align", "alignment", "paste", "alignment"], ["paste", "image", "create", "images"],
                              ["components", "fps", "create", "fps"], ["components", "audio", "create", "audio"],
                              ["create", "VIDEO", "save", "video"]]}


EXAMPLES = {
    "clipinverter_text_edit": text_edit,
    "clipinverter_reference_image_edit": reference_edit,
    "clipinverter_several_prompts": several_prompts,
    "clipinverter_edit_then_diffusion_upscale": diffusion_upscale,
    "clipinverter_whole_photo_edit": whole_photo,
    "clipinverter_video_edit": video_edit,
    "clipinverter_video_frames_edit": video_frames_edit,
    "clipinverter_identity_edit": identity_edit,
}
PHOTO_SIZE = {"clipinverter_whole_photo_edit": (512, 512),  # (W, H) of PHOTO: the pasted-back output's size
              "clipinverter_identity_edit": (512, 512)}
# examples whose output is a video (SaveVideo), of the clip's size and length
VIDEOS = {"clipinverter_video_edit", "clipinverter_video_frames_edit"}
NEEDS_CHECKPOINT = {"clipinverter_edit_then_diffusion_upscale"}
# widget values the tests set before they run an example (class_type -> {widget: value}): on the tests' CPU, Refine
# Identity's default 350 steps would take many minutes; 2 steps tune it all the same
TEST_WIDGETS = {"clipinverter_identity_edit": {"CLIPInverterRefineIdentity": {"steps": 2}}}
