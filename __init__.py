"""ComfyUI entry point of the MatAnyone 2 video-matting nodes (V3 API).

Importing this package does no work: the nodes are imported when ComfyUI asks for the extension, and
no model is loaded until a workflow runs.
"""


async def comfy_entrypoint():
    """The ComfyExtension that lists our nodes (called by ComfyUI when it loads custom nodes)."""
    from .nodes import MatAnyone2Extension

    return MatAnyone2Extension()
