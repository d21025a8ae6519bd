"""UI-format workflow (what the frontend saves) -> API-format prompt (what POST /prompt takes), the way the
frontend's graphToPrompt does it for plain graphs: linked inputs become [node id, output slot]; widget values
are read in the order /object_info lists the node's widget inputs, skipping the frontend-only
`control_after_generate` value that follows a seed."""
from __future__ import annotations

SOCKET_ONLY = "socket"


def _widget_names(info: dict) -> list[tuple[str, bool]]:
    """(name, followed by a control_after_generate value) for each widget input, in order."""
    out = []
    for group in ("required", "optional"):
        spec = info["input"].get(group, {})
        for name in info.get("input_order", {}).get(group, list(spec)):
            kind, opts = spec[name][0], (spec[name][1] if len(spec[name]) > 1 else {})
            if isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"):
                if not opts.get("forceInput"):
                    out.append((name, bool(opts.get("control_after_generate")) or
                                (kind == "INT" and name in ("seed", "noise_seed"))))
    return out


def to_api(workflow: dict, object_info: dict) -> dict:
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) != 0:  # muted or bypassed
            continue
        info = object_info[node["type"]]
        inputs = {}
        values = list(node.get("widgets_values") or [])
        for name, has_control in _widget_names(info):
            if values:
                inputs[name] = values.pop(0)
                if has_control and values:
                    values.pop(0)
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                _, origin, origin_slot, *_ = links[slot["link"]]
                inputs[slot["name"]] = [str(origin), origin_slot]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                   "_meta": {"title": node.get("title", node["type"])}}
    return prompt


def set_widgets(prompt: dict, changes: dict) -> dict:
    """Sets widget values of an API-format prompt in place: changes = {class_type: {widget: value}}."""
    for node in prompt.values():
        node["inputs"].update(changes.get(node["class_type"], {}))
    return prompt
