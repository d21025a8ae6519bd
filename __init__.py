"""ComfyUI entry point of the CLIPInverter node pack. Importing this file outside ComfyUI does nothing."""

WEB_DIRECTORY = "./web"  # help pages: web/docs/<NodeId>.md


async def comfy_entrypoint():
    from .nodes import CLIPInverterExtension

    return CLIPInverterExtension()
