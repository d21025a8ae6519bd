"""Opt-in download of the official weights (never at import, never at run time unless asked).

    python -m clipinverter_core download --to DIR [--no-convert] [--base-url URL]

Sources come from models/catalog.json: Google Drive files through gdown, CLIP from the OpenAI URL (or
`--clip-from huggingface`). Each file is fetched to `<name>.part` (resumed on the next run when the server
supports ranges), checked for the layout its role needs, and only then renamed to its final name. With every
file in place the three are converted into one bundle. `--base-url` fetches every file as `<URL>/<name>`
from a mirror of your own (tests use a server on 127.0.0.1).
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request

from ..errors import CheckpointError, DownloadError
from .sources import CATALOG, read_catalog

CHUNK = 1 << 20
TIMEOUT_S = 60
HTML_MARKERS = (b"<!doctype html", b"<html")


# --- transfer -----------------------------------------------------------------------------------------------
def _progress(total: int | None, initial: int, name: str):
    try:
        from tqdm import tqdm
        return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name)
    except ImportError:  # pragma: no cover - tqdm comes with open_clip
        return None


def http_fetch(url: str, part: str, name: str, progress: bool = True) -> None:
    """Fetches `url` into `part`, resuming from its current size when the server honours Range."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    req = urllib.request.Request(url, headers={"User-Agent": "clipinverter-download"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the part already holds the whole file
            return
        hint = "not found there" if e.code == 404 else "a server error; try again later" if e.code >= 500 else e.reason
        raise DownloadError(f"{name}: HTTP {e.code} from {url} ({hint})") from None
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        raise DownloadError(f"{name}: cannot reach {url} ({getattr(e, 'reason', e)})") from None
    with resp:
        if resp.status == 200 and have:  # no range support: start again
            have = 0
        ctype = resp.headers.get("Content-Type", "")
        length = resp.headers.get("Content-Length")
        total = (int(length) + have) if length is not None else None
        first = resp.read(CHUNK)
        if "text/html" in ctype or first[:512].lstrip().lower().startswith(HTML_MARKERS):
            raise DownloadError(f"{name}: {url} sent a web page, not the file (a quota, login or virus-scan "
                                "page?); download it in a browser and put it in the folder")
        bar = _progress(total, have, name) if progress else None
        got = have
        try:
            with open(part, "ab" if have else "wb") as f:
                chunk = first
                while chunk:
                    f.write(chunk)
                    got += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                    chunk = resp.read(CHUNK)
        except (OSError, urllib.error.URLError) as e:
            raise DownloadError(f"{name}: transfer broke at {got} bytes ({e}); run the same command again to "
                                "resume") from None
        finally:
            if bar is not None:
                bar.close()
    if total is not None and got < total:
        raise DownloadError(f"{name}: transfer stopped at {got} of {total} bytes; run the same command again to "
                            "resume")


def drive_fetch(file_id: str, part: str, name: str, progress: bool = True) -> None:
    try:
        import gdown
    except ImportError:
        raise DownloadError(f"{name}: Google Drive downloads need gdown: pip install gdown") from None
    if gdown.download(id=file_id, output=part, quiet=not progress, resume=True) is None:
        raise DownloadError(f"{name}: gdown could not fetch Google Drive file {file_id} (quota or access); "
                            "download it in a browser and put it in the folder")


def hf_fetch(repo: str, filename: str, folder: str, name: str) -> str:
    try:
        from huggingface_hub import hf_hub_download
        return hf_hub_download(repo, filename, local_dir=folder)
    except Exception as e:
        raise DownloadError(f"{name}: huggingface_hub could not fetch {repo}/{filename} ({e})") from None


# --- validation ---------------------------------------------------------------------------------------------
def validate(role: str, path: str) -> None:
    """Checks that a file has the layout its role needs (without running any pickle code)."""
    from .official import is_torchscript, load_pt, read_clip_state_dict

    if role == "clip":
        if not is_torchscript(path):
            sd = read_clip_state_dict(path)
            if "visual.proj" not in sd or "text_projection" not in sd:
                raise CheckpointError(f"{path}: not a CLIP ViT state dict")
        return
    ckpt = load_pt(path)
    sd = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    need = {"clipinverter": ("adapter.", "decoder."), "e4e": ("encoder.",)}[role]
    if not isinstance(sd, dict) or not all(any(k.startswith(p) for k in sd) for p in need):
        raise CheckpointError(f"{path}: not the {role} checkpoint (no {' / '.join(p + '*' for p in need)} keys)")
    if role == "e4e" and "latent_avg" not in ckpt:
        raise CheckpointError(f"{path}: not the e4e checkpoint (no latent_avg)")


# --- the command ----------------------------------------------------------------------------------------------
def download(to: str, base_url: str | None = None, convert: bool = True, clip_from: str = "openai",
             progress: bool = True, catalog: str = CATALOG, log=print) -> dict[str, str]:
    """Fetches every source of the catalog into `to`; returns {role: path} (and 'bundle' when converted)."""
    cat = read_catalog(catalog)
    os.makedirs(to, exist_ok=True)
    paths = {}
    for src in cat["sources"]:
        role, name = src["role"], src["file"]
        final = os.path.join(to, name)
        paths[role] = final
        if os.path.exists(final):
            log(f"{name}: already in {to}")
            continue
        part = final + ".part"
        if base_url:
            http_fetch(f"{base_url.rstrip('/')}/{name}", part, name, progress)
        elif role == "clip" and clip_from == "huggingface":
            alt = src["alternative"]
            final = paths[role] = os.path.join(to, alt["file"])
            if os.path.exists(final):
                continue
            os.replace(hf_fetch(alt["repo"], alt["file"], to + "/.hf", name), part)
        elif src["kind"] == "google_drive":
            drive_fetch(src["id"], part, name, progress)
        else:
            http_fetch(src["url"], part, name, progress)
        try:
            validate(role, part)
        except CheckpointError as e:
            os.remove(part)
            raise DownloadError(f"{name}: the downloaded file is not usable ({e}); it was deleted") from None
        os.replace(part, final)
        log(f"{name}: saved to {final}")
    if convert:
        from .convert import convert as convert_files

        bundle = os.path.join(to, cat["bundle"]["file"])
        if not os.path.exists(bundle):
            convert_files(paths["clipinverter"], paths["e4e"], paths["clip"], bundle, log=log)
        paths["bundle"] = bundle
    return paths
