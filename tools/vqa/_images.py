"""Turning an image source (path, bytes, ``data:`` or ``http(s)`` URL) into checked image bytes."""

from __future__ import annotations

import base64
import binascii
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from lumos_graph.errors import ConfigError

__all__ = ["MAX_IMAGE_BYTES", "ImageSource", "describe_source", "image_format", "load_image"]

ImageSource = str | bytes | os.PathLike[str]
"""A file path, raw image bytes, or a ``data:``/``http(s)://``/``file://`` URL."""

MAX_IMAGE_BYTES = 64 << 20
DOWNLOAD_TIMEOUT = 20.0
_USER_AGENT = "lumos-graph (+https://pypi.org/project/lumos-graph/)"

_MAGIC: tuple[tuple[bytes, int, str], ...] = (  # (bytes, offset, format)
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"BM", 0, "BMP"),
    (b"WEBP", 8, "WEBP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
)


def image_format(data: bytes) -> str | None:
    """``"PNG"``, ``"JPEG"``, ``"GIF"``, ``"BMP"``, ``"WEBP"`` or ``"TIFF"`` by magic bytes."""
    for magic, offset, name in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            if name == "WEBP" and not data.startswith(b"RIFF"):
                continue
            return name
    return None


def describe_source(source: ImageSource) -> str:
    """A short human name of ``source`` for messages (never a whole data URL)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return f"the given image bytes ({len(source)} bytes)"
    text = os.fspath(source)
    return text if len(text) <= 80 else text[:60] + "…"


def load_image(source: ImageSource, *, timeout: float = DOWNLOAD_TIMEOUT) -> bytes:
    """The bytes of an image, read from a path, given as bytes, or fetched from a URL.

    Args:
        source: a file path (``str`` or ``Path``, ``~`` expanded), raw bytes, a ``data:`` URL
            (base64 or percent-encoded), an ``http(s)://`` URL (downloaded) or a ``file://``
            URL.
        timeout: seconds a download may take.

    Raises:
        ConfigError: the file does not exist, the download failed, the data URL is malformed,
            or the bytes are not a PNG, JPEG, GIF, BMP, WEBP or TIFF image.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str) and source.strip().startswith("data:"):
        data = _decode_data_url(source.strip())
    elif isinstance(source, str) and source.strip().lower().startswith(("http://", "https://")):
        data = _download(source.strip(), timeout)
    elif isinstance(source, str) and source.strip().startswith("file://"):
        path = urllib.request.url2pathname(urllib.parse.urlparse(source.strip()).path)
        data = _read_file(Path(path))
    elif isinstance(source, str | os.PathLike):
        text = os.fspath(source).strip()
        if not text:
            raise ConfigError("an image source is empty")
        data = _read_file(Path(text).expanduser())
    else:
        raise ConfigError(
            f"an image is a path, bytes or a URL, not {type(source).__name__}")
    if image_format(data) is None:
        head = data[:16]
        raise ConfigError(
            f"{describe_source(source)} is not an image (PNG, JPEG, GIF, BMP, WEBP or TIFF): "
            + ("it is empty" if not data else f"it starts with {head!r}"))
    return data


def _read_file(path: Path) -> bytes:
    if not path.is_file():
        raise ConfigError(f"image file not found: {path}")
    if path.stat().st_size > MAX_IMAGE_BYTES:
        raise ConfigError(f"image file {path} is larger than {MAX_IMAGE_BYTES >> 20} MiB")
    try:
        return path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read image file {path}: {error}") from error


def _decode_data_url(url: str) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma:
        raise ConfigError(f"malformed data: URL (no comma): {describe_source(url)}")
    if header.endswith(";base64"):
        try:
            return base64.b64decode("".join(payload.split()), validate=True)
        except (binascii.Error, ValueError) as error:
            raise ConfigError(f"malformed base64 in data: URL: {error}") from error
    return urllib.parse.unquote_to_bytes(payload)


def _download(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        # only http(s) URLs reach here
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data: bytes = response.read(MAX_IMAGE_BYTES + 1)
    except urllib.error.HTTPError as error:
        error.close()  # it holds the response
        raise ConfigError(f"cannot download image {url}: HTTP {error.code} {error.reason}") \
            from error
    except urllib.error.URLError as error:
        raise ConfigError(f"cannot download image {url}: {error.reason}") from error
    except (TimeoutError, OSError) as error:
        raise ConfigError(f"cannot download image {url}: {error or 'timed out'}") from error
    if len(data) > MAX_IMAGE_BYTES:
        raise ConfigError(f"image {url} is larger than {MAX_IMAGE_BYTES >> 20} MiB")
    return data
