"""Test data for the VQA tools: rendered images, a loopback HTTP server, a tiny random VLM.

:func:`write_tiny_vlm` writes a vision-language model small enough to build in well under a
second: a 2-layer LLaMA text model (64-dim, byte-fallback SentencePiece vocabulary) and a CLIP
projector GGUF of llama.cpp's ``mlp`` (LLaVA-1.5) type (32x32 images in 8x8 patches, 16 image
tokens, a 2-layer 32-dim ViT, a 2-layer MLP projecting onto the text model's 64 dimensions).
Weights are random, so the answers are gibberish; what the files exercise is the real path:
llama-cpp-python's ``Llava15ChatHandler`` loading the projector with ``mtmd_init_from_file``,
encoding the image with CLIP and decoding its embeddings into the text model.

The key and tensor names follow ``tools/mtmd/clip.cpp`` and ``clip-impl.h`` of the llama.cpp
vendored in llama-cpp-python 0.3.36 (``load_hparams``/``load_tensors``, ``clip_graph_llava``).
"""

from __future__ import annotations

import contextlib
import http.server
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "TINY_IMAGE_TOKENS",
    "http_server",
    "render_sign",
    "render_text",
    "write_tiny_vlm",
]

TEXT_EMBD = 64
VISION_EMBD = 32
IMAGE_SIZE = 32
PATCH_SIZE = 8
TINY_IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2  # what one image costs in the prompt


# --------------------------------------------------------------------------- images


def render_sign(words: tuple[str, str] = ("STOP", "OPEN 9-5"), fmt: str = "PNG") -> bytes:
    """A red octagon saying ``words[0]`` above a black ``words[1]``, encoded as ``fmt``."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (480, 320), "white")
    draw = ImageDraw.Draw(image)
    draw.regular_polygon((240, 110, 95), 8, rotation=22.5, fill=(200, 20, 20))
    draw.text((240, 110), words[0], font=ImageFont.load_default(size=72), fill="white",
              anchor="mm")
    draw.text((240, 260), words[1], font=ImageFont.load_default(size=48), fill="black",
              anchor="mm")
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def render_text(text: str, size: tuple[int, int] = (360, 120)) -> bytes:
    """``text`` in black on white, centred, as PNG."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((size[0] // 2, size[1] // 2), text, fill="black", anchor="mm",
                               font=ImageFont.load_default(size=40))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------- loopback server


@contextlib.contextmanager
def http_server(files: dict[str, tuple[bytes, str]]) -> Iterator[str]:
    """Serve ``{path: (body, content type)}`` on 127.0.0.1; yields the base URL.

    Unknown paths answer 404. The server runs in a daemon thread and stops on exit.
    """

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the http.server API names it
            found = files.get(self.path)
            if found is None:
                self.send_error(404)
                return
            body, content_type = found
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --------------------------------------------------------------------------- tiny VLM


def _weights(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.05).astype(np.float32)


def _ones(n: int) -> np.ndarray:
    return np.ones(n, dtype=np.float32)


def _write_text_model(path: Path, rng: np.random.Generator) -> None:
    import gguf

    # SentencePiece vocabulary: specials, the 256 byte-fallback tokens, printable ASCII
    tokens = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    tokens += ["▁" if c == " " else c for c in map(chr, range(32, 127))]
    types += [gguf.TokenType.NORMAL] * 95
    n_vocab, n_layer, n_head, n_ff = len(tokens), 2, 4, 128

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny random vlm (tests)")
    writer.add_context_length(512)
    writer.add_embedding_length(TEXT_EMBD)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(TEXT_EMBD // n_head)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * 259 + [-float(i) for i in range(95)])
    writer.add_token_types([int(t) for t in types])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)

    # numpy shapes are (out, in): gguf reverses them into ggml's ne order
    writer.add_tensor("token_embd.weight", _weights(rng, n_vocab, TEXT_EMBD))
    writer.add_tensor("output_norm.weight", _ones(TEXT_EMBD))
    # Only the printable-ASCII rows of the output projection are non-zero, so greedy decoding
    # (whose best logit is positive for almost any hidden state) writes printable text and
    # never a lone byte token, which llama-cpp-python would keep decoding past max_tokens
    # while it waits for the rest of a UTF-8 character.
    output = np.zeros((n_vocab, TEXT_EMBD), dtype=np.float32)
    output[-95:] = _weights(rng, 95, TEXT_EMBD)
    writer.add_tensor("output.weight", output)
    for i in range(n_layer):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", _ones(TEXT_EMBD))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"blk.{i}.{name}.weight", _weights(rng, TEXT_EMBD, TEXT_EMBD))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", _ones(TEXT_EMBD))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", _weights(rng, n_ff, TEXT_EMBD))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", _weights(rng, n_ff, TEXT_EMBD))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", _weights(rng, TEXT_EMBD, n_ff))
    _finish(writer)


def _write_projector(path: Path, rng: np.random.Generator, out_dim: int) -> None:
    import gguf

    n_layer, n_head, n_ff = 2, 2, 64  # n_ff != VISION_EMBD: clip.cpp would "unswap" the FFN
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_name("tiny random projector (tests)")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_uint32("clip.vision.embedding_length", VISION_EMBD)
    writer.add_uint32("clip.vision.attention.head_count", n_head)
    writer.add_uint32("clip.vision.feed_forward_length", n_ff)
    writer.add_uint32("clip.vision.block_count", n_layer)
    writer.add_uint32("clip.vision.projection_dim", out_dim)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    writer.add_bool("clip.use_gelu", True)

    n_pos = TINY_IMAGE_TOKENS + 1  # patches and the class embedding
    writer.add_tensor("v.patch_embd.weight",
                      _weights(rng, VISION_EMBD, 3, PATCH_SIZE, PATCH_SIZE))
    writer.add_tensor("v.class_embd", _weights(rng, VISION_EMBD))
    writer.add_tensor("v.position_embd.weight", _weights(rng, n_pos, VISION_EMBD))
    writer.add_tensor("v.pre_ln.weight", _ones(VISION_EMBD))
    writer.add_tensor("v.pre_ln.bias", np.zeros(VISION_EMBD, dtype=np.float32))
    for i in range(n_layer):
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            writer.add_tensor(f"v.blk.{i}.{name}.weight", _weights(rng, VISION_EMBD, VISION_EMBD))
            writer.add_tensor(f"v.blk.{i}.{name}.bias", _weights(rng, VISION_EMBD))
        for norm in ("ln1", "ln2"):
            writer.add_tensor(f"v.blk.{i}.{norm}.weight", _ones(VISION_EMBD))
            writer.add_tensor(f"v.blk.{i}.{norm}.bias", np.zeros(VISION_EMBD, dtype=np.float32))
        writer.add_tensor(f"v.blk.{i}.ffn_up.weight", _weights(rng, n_ff, VISION_EMBD))
        writer.add_tensor(f"v.blk.{i}.ffn_up.bias", _weights(rng, n_ff))
        writer.add_tensor(f"v.blk.{i}.ffn_down.weight", _weights(rng, VISION_EMBD, n_ff))
        writer.add_tensor(f"v.blk.{i}.ffn_down.bias", _weights(rng, VISION_EMBD))
    # LLaVA-1.5 projector: mm.0 (linear), GELU, mm.2 (linear) onto the text embedding
    writer.add_tensor("mm.0.weight", _weights(rng, out_dim, VISION_EMBD))
    writer.add_tensor("mm.0.bias", _weights(rng, out_dim))
    writer.add_tensor("mm.2.weight", _weights(rng, out_dim, out_dim))
    writer.add_tensor("mm.2.bias", _weights(rng, out_dim))
    _finish(writer)


def _finish(writer: Any) -> None:  # a gguf.GGUFWriter (gguf is imported lazily)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_tiny_vlm(
    directory: Path, *, seed: int = 0, projector_dim: int = TEXT_EMBD
) -> tuple[Path, Path]:
    """Write the tiny text model and its projector into ``directory``.

    Args:
        directory: where the two files go.
        seed: of the random weights.
        projector_dim: the projector's output size; anything but the text model's 64 makes a
            projector that does not fit the model (llama.cpp refuses it).

    Returns:
        ``(model path, mmproj path)``.
    """
    rng = np.random.default_rng(seed)
    model, mmproj = directory / "tiny-vlm.gguf", directory / "tiny-vlm-mmproj.gguf"
    _write_text_model(model, rng)
    _write_projector(mmproj, rng, projector_dim)
    return model, mmproj
