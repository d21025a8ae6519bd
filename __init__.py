"""ComfyUI entry point of the CLIPInverter node pack. Importing this file outside ComfyUI does nothing."""


async def comfy_entrypoint():
    from .nodes import CLIPInverterExtension

    return CLIPInverterExtension()
