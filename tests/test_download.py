"""Opt-in downloads against an HTTP server on 127.0.0.1: resume, HTTP errors, web pages, wrong layouts.
Nothing is ever left under a final name unless it was complete and of the right layout."""
import http.server
import os
import threading

import pytest
import torch

from clipinverter_core.weights.download import download
from clipinverter_core.errors import DownloadError
from test_convert import _cli


class Server:
    """Serves `files` (name -> bytes) with Range support; `faults` (name -> mode) injects failures:
    'cut' sends half the body then closes, '404', '500', 'html' (a login page with status 200)."""

    def __init__(self):
        self.files, self.faults, self.requests = {}, {}, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                outer.requests.append((name, self.headers.get("Range")))
                fault = outer.faults.get(name)
                if fault in ("404", "500") or name not in outer.files and fault is None:
                    self.send_error(int(fault or 404))
                    return
                if fault == "html":
                    body = b"<!DOCTYPE html><html><body>Sign in to continue</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                data, start = outer.files[name], 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if fault == "cut":
                    outer.faults.pop(name)  # the next try succeeds
                    body = body[: len(body) // 2]
                self.wfile.write(body)
                self.wfile.flush()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def _small_official_files(tmp_path):
    """Tiny files with the right top-level layout (enough for the download's checks, not for conversion)."""
    out = {}
    for name, obj in {
        "pretrained_faces.pt": {"state_dict": {"adapter.a": torch.zeros(2), "decoder.b": torch.ones(3)}, "opts": {}},
        "e4e_ffhq_encode.pt": {"state_dict": {"encoder.c": torch.zeros(4)}, "latent_avg": torch.zeros(14, 512)},
        "ViT-B-32.pt": {"visual.proj": torch.zeros(8, 4), "text_projection": torch.zeros(4, 4)},
    }.items():
        torch.save(obj, tmp_path / name)
        out[name] = (tmp_path / name).read_bytes()
    return out


def test_fetches_checks_and_renames(server, tmp_path):
    (tmp_path / "src").mkdir()
    server.files = _small_official_files(tmp_path / "src")
    to = tmp_path / "models"
    paths = download(str(to), base_url=server.url, convert=False, progress=False, log=lambda *_: None)
    assert sorted(os.listdir(to)) == ["ViT-B-32.pt", "e4e_ffhq_encode.pt", "pretrained_faces.pt"]
    assert (to / "e4e_ffhq_encode.pt").read_bytes() == server.files["e4e_ffhq_encode.pt"]
    assert set(paths) == {"clipinverter", "e4e", "clip"}


def test_an_interrupted_transfer_resumes(server, tmp_path):
    (tmp_path / "src").mkdir()
    server.files = _small_official_files(tmp_path / "src")
    server.faults["e4e_ffhq_encode.pt"] = "cut"
    to = tmp_path / "models"
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        download(str(to), base_url=server.url, convert=False, progress=False, log=lambda *_: None)
    assert not (to / "e4e_ffhq_encode.pt").exists() and (to / "e4e_ffhq_encode.pt.part").exists()
    download(str(to), base_url=server.url, convert=False, progress=False, log=lambda *_: None)
    assert (to / "e4e_ffhq_encode.pt").read_bytes() == server.files["e4e_ffhq_encode.pt"]
    assert ("e4e_ffhq_encode.pt", f"bytes={len(server.files['e4e_ffhq_encode.pt']) // 2}-") in server.requests


@pytest.mark.parametrize("fault,message", [("404", "HTTP 404.*not found"), ("500", "HTTP 500.*try again later"),
                                           ("html", "web page, not the file")])
def test_http_errors_and_web_pages_leave_nothing(server, tmp_path, fault, message):
    (tmp_path / "src").mkdir()
    server.files = _small_official_files(tmp_path / "src")
    server.faults["pretrained_faces.pt"] = fault
    to = tmp_path / "models"
    with pytest.raises(DownloadError, match=message):
        download(str(to), base_url=server.url, convert=False, progress=False, log=lambda *_: None)
    assert not (to / "pretrained_faces.pt").exists()


def test_a_file_of_the_wrong_layout_is_deleted(server, tmp_path):
    (tmp_path / "src").mkdir()
    server.files = _small_official_files(tmp_path / "src")
    server.files["pretrained_faces.pt"] = server.files["e4e_ffhq_encode.pt"]  # the wrong file under the name
    to = tmp_path / "models"
    with pytest.raises(DownloadError, match="not usable.*adapter"):
        download(str(to), base_url=server.url, convert=False, progress=False, log=lambda *_: None)
    assert not any(n.startswith("pretrained_faces.pt") for n in os.listdir(to))


def test_cli_download_and_convert_end_to_end(server, tmp_path, kit256):
    for role in ("clipinverter", "e4e", "clip"):
        path = kit256.files[role]
        with open(path, "rb") as f:
            server.files[os.path.basename(path)] = f.read()
    p = _cli("download", "--to", tmp_path / "m", "--base-url", server.url, "--quiet")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "m" / "clipinverter_faces.safetensors").exists()
    p = _cli("download", "--to", tmp_path / "n", "--base-url", server.url + "/missing", "--quiet")
    assert p.returncode == 2 and p.stderr.startswith("error: ") and p.stderr.count("\n") == 1
