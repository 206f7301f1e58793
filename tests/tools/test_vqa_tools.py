"""The VQA action: image loading, OCR on real images, a real (tiny) vision-language model.

The OCR tests run RapidOCR's real weights; the VLM tests load a tiny random-weight LLaVA-style
model through llama-cpp-python's real ``Llava15ChatHandler`` (see ``tests/vqa_fixtures.py``).
Nothing here touches the network: URLs are served from 127.0.0.1.
"""

from __future__ import annotations

import base64
import socket
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lumos_graph.agent.actions import ActionSet
from lumos_graph.errors import ConfigError, ModelNotFoundError, ToolError
from lumos_graph.tools.vqa.actions import (
    CHAT_FORMATS,
    OCRBackend,
    VLMBackend,
    default_vqa_backend,
    load_image,
    vqa_action,
)
from tests.fakes import scripted
from tests.needs import need
from tests.package_files import package_file
from tests.vqa_fixtures import (
    TINY_IMAGE_TOKENS,
    http_server,
    render_sign,
    render_text,
    write_tiny_vlm,
)

SIGN_TEXT = "Text in the image: STOP / OPEN 9-5"
QUESTION = "Question: What does the sign say?"


def _require(module: str) -> None:
    """Skip without ``module`` (an optional extra); in CI its absence is a failure."""
    need(module)


class Recorder:
    """A backend that records what it was asked and answers with the image's size."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, str]] = []

    def answer(self, image: bytes, question: str) -> str:
        self.calls.append((image, question))
        return f"{len(image)} bytes"


@pytest.fixture(scope="module")
def sign() -> bytes:
    _require("PIL")  # Pillow renders the test images (rapidocr-onnxruntime depends on it)
    return render_sign()


@pytest.fixture(scope="module")
def ocr() -> OCRBackend:
    _require("rapidocr_onnxruntime")
    backend = OCRBackend(n_threads=2)
    backend.load()
    return backend


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLMBackend]:
    _require("gguf")
    model, mmproj = write_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"))
    backend = VLMBackend(model, mmproj, n_ctx=512, n_threads=2, max_tokens=8)
    yield backend
    backend.close()


# --------------------------------------------------------------------------- load_image


def test_images_load_from_bytes_paths_and_data_urls(tmp_path: Path, sign: bytes) -> None:
    file = tmp_path / "sign.png"
    file.write_bytes(sign)
    encoded = base64.b64encode(sign).decode()
    assert load_image(sign) == load_image(bytearray(sign)) == sign
    assert load_image(file) == load_image(str(file)) == load_image(file.as_uri()) == sign
    assert load_image(f"data:image/png;base64,{encoded}") == sign
    assert load_image(f"data:image/png,{urllib.parse.quote_from_bytes(sign)}") == sign


def test_images_download_from_http_urls(sign: bytes) -> None:
    files = {"/sign.png": (sign, "image/png"), "/page": (b"<html>hi</html>", "text/html")}
    with http_server(files) as base:
        assert load_image(f"{base}/sign.png") == sign
        with pytest.raises(ConfigError, match="HTTP 404"):
            load_image(f"{base}/missing.png")
        with pytest.raises(ConfigError, match=r"is not an image .*starts with b'<html>"):
            load_image(f"{base}/page")


def test_a_download_that_never_answers_times_out() -> None:
    with socket.socket() as listener:  # accepts connections into its backlog, never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/slow.png"
        with pytest.raises(ConfigError, match=r"cannot download image .*timed out"):
            load_image(url, timeout=0.3)


def test_bad_image_sources_are_clear_errors(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    with pytest.raises(ConfigError, match=r"image file not found: .*nope\.png"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ConfigError, match=r"notes.txt is not an image \(PNG, JPEG"):
        load_image(notes)
    with pytest.raises(ConfigError, match="it is empty"):
        load_image(b"")
    with pytest.raises(ConfigError, match="malformed base64"):
        load_image("data:image/png;base64,@@@")
    with pytest.raises(ConfigError, match="no comma"):
        load_image("data:image/png;base64")
    with pytest.raises(ConfigError, match="not int"):
        load_image(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- OCR


def test_ocr_reads_the_text_photo_of_scikit_image(ocr: OCRBackend) -> None:
    # skimage/data/text.png: handwritten maths on paper at a slant; the OCR reads fragments
    photo = package_file("scikit-image==0.26.0", "skimage/data/text.png")
    answer = vqa_action(ocr).executor("[IMG]", "Question: What is written?", images=[photo])
    assert answer.startswith("Text in the image: ")
    first_line = answer.removeprefix("Text in the image: ").split(" / ")[0]
    assert first_line.lower().replace(" ", "") == "s="  # the "(s) =" of the top line


def test_ocr_reads_a_rendered_sign_line_by_line(ocr: OCRBackend, sign: bytes) -> None:
    assert ocr.answer(sign, "What does the sign say?") == SIGN_TEXT
    blank = render_text("")
    assert ocr.answer(blank, "What does the sign say?") == "No text found in the image."


def test_ocr_is_safe_to_call_from_threads(ocr: OCRBackend, sign: bytes) -> None:
    word = render_text("HELLO")
    results: dict[str, list[str]] = {}

    def read(name: str, image: bytes) -> None:
        results[name] = ocr.read(image)

    threads = [threading.Thread(target=read, args=a) for a in (("sign", sign), ("word", word))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"sign": ["STOP", "OPEN 9-5"], "word": ["HELLO"]}


def test_ocr_of_bytes_that_are_no_image_is_a_tool_error(ocr: OCRBackend) -> None:
    with pytest.raises(ToolError, match="could not be used"):
        ocr.read(b"\x89PNG\r\n\x1a\n truncated")


def test_without_rapidocr_ocr_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)  # as if not installed
    with pytest.raises(ConfigError, match=r'pip install "lumos-graph\[vqa\]"'):
        OCRBackend()
    assert default_vqa_backend() is None


# --------------------------------------------------------------------------- the action


def test_the_action_is_listed_as_lumos_writes_it() -> None:
    action = vqa_action(None)
    assert action.doc == "VQA(image, question): Answer a question about the given image"
    assert action.needs_images and action.arity() == (2, 2)


@pytest.mark.parametrize("source", ["bytes", "path", "data", "http"])
def test_vqa_reads_the_sign_from_every_kind_of_source(
    ocr: OCRBackend, sign: bytes, tmp_path: Path, source: str
) -> None:
    file = tmp_path / "sign.png"
    file.write_bytes(sign)
    with http_server({"/sign.png": (sign, "image/png")}) as base:
        image: Any = {
            "bytes": sign,
            "path": str(file),
            "data": "data:image/png;base64," + base64.b64encode(sign).decode(),
            "http": f"{base}/sign.png",
        }[source]
        assert vqa_action(ocr).executor("[IMG]", QUESTION, images=[image]) == SIGN_TEXT


def test_an_agent_run_with_an_image_reads_it(ocr: OCRBackend, tmp_path: Path,
                                             sign: bytes) -> None:
    from lumos_graph.graphs.lumos import create_lumos_agent

    file = tmp_path / "sign.png"
    file.write_bytes(sign)
    agent = create_lumos_agent(
        planner=scripted(["Subgoal 1: Read the text of the sign in the image."]),
        grounder=scripted([f"R1 = VQA([IMG], {QUESTION})"]),
        actions=ActionSet([vqa_action(ocr)]))
    out = agent.invoke({"task": "What does the sign say?", "images": [str(file)]})
    assert out["actions"][0]["result"] == [SIGN_TEXT]
    assert "STOP" in out["answer"]


@pytest.mark.parametrize(("ref", "chosen"), [
    ("[IMG]", 0), ("IMG", 0), ("[IMG1]", 0), ("IMG2", 1), ("[IMG_2]", 1), ("image 2", 1),
    ("<image>", 0), ("Picture 3", 2), ("the photo of the street", 0), ("", 0),
])
def test_the_first_argument_chooses_the_image(ref: str, chosen: int) -> None:
    backend = Recorder()
    images = [b"GIF89a-first", b"GIF89a-second!", b"GIF89a-the third"]
    vqa_action(backend).executor(ref, QUESTION, images=images)
    assert backend.calls == [(images[chosen], "What does the sign say?")]


def test_a_real_ocr_looks_at_the_second_image_when_asked(ocr: OCRBackend, sign: bytes) -> None:
    images = [render_text("HELLO"), sign]
    assert vqa_action(ocr).executor("IMG2", QUESTION, images=images) == SIGN_TEXT
    assert vqa_action(ocr).executor("[IMG]", QUESTION, images=images) == \
        "Text in the image: HELLO"


def test_the_question_is_cleaned_and_swapped_arguments_are_understood() -> None:
    backend = Recorder()
    action = vqa_action(backend)
    action.executor("[IMG]", "  question:  What colour is the car? ", images=[b"BM.."])
    action.executor("Question: Is it raining?", "[IMG]", images=[b"BM.."])
    assert [q for _, q in backend.calls] == ["What colour is the car?", "Is it raining?"]
    with pytest.raises(ToolError, match="The question is empty"):
        action.executor("[IMG]", "Question:", images=[b"BM.."])


def test_failures_are_observations_for_the_model(tmp_path: Path) -> None:
    action = vqa_action(Recorder())
    with pytest.raises(ToolError, match="No image was given with the task"):
        action.executor("[IMG]", QUESTION, images=[])
    with pytest.raises(ToolError, match="There is no image 3: the task has 2 images"):
        action.executor("IMG3", QUESTION, images=[b"BM1", b"BM2"])
    with pytest.raises(ToolError, match="could not be used: image file not found"):
        action.executor("[IMG]", QUESTION, images=[str(tmp_path / "gone.png")])
    with pytest.raises(ToolError, match=r"could not be used: .* is not an image"):
        action.executor("[IMG]", QUESTION, images=[b"%PDF-1.7"])

    class Silent:
        def answer(self, image: bytes, question: str) -> str:
            return "  "

    with pytest.raises(ToolError, match="gave no answer"):
        vqa_action(Silent()).executor("[IMG]", QUESTION, images=[b"BM1"])


def test_without_a_vision_backend_vqa_says_how_to_configure_one(sign: bytes) -> None:
    action = vqa_action(None)
    with pytest.raises(ToolError) as caught:
        action.executor("[IMG]", QUESTION, images=[sign])
    message = str(caught.value)
    assert "--vqa-model MODEL.gguf --vqa-mmproj MMPROJ.gguf" in message
    assert 'pip install "lumos-graph[vqa]"' in message
    with pytest.raises(ToolError, match="No image was given"):
        action.executor("[IMG]", QUESTION, images=[])


# --------------------------------------------------------------------------- the VLM backend


def test_vlm_files_and_options_are_checked_before_anything_loads(tmp_path: Path) -> None:
    _require("gguf")
    model, mmproj = write_tiny_vlm(tmp_path)
    with pytest.raises(ModelNotFoundError, match="model file not found"):
        VLMBackend(model, tmp_path / "missing-mmproj.gguf")
    notes = tmp_path / "notes.gguf"
    notes.write_text("hello")
    with pytest.raises(ConfigError, match="is not a GGUF model"):
        VLMBackend(notes, mmproj)
    with pytest.raises(ConfigError, match=r"unknown VQA chat format 'llava'.*llava-1-5"):
        VLMBackend(model, mmproj, chat_format="llava")
    with pytest.raises(ConfigError, match="max_tokens must be at least 1"):
        VLMBackend(model, mmproj, max_tokens=0)
    with pytest.raises(ConfigError, match="n_threads must be at least 1"):
        VLMBackend(model, mmproj, n_threads=0)
    assert isinstance(default_vqa_backend((model, mmproj)), VLMBackend)


def test_every_chat_format_names_a_handler_of_the_installed_llama_cpp() -> None:
    import llama_cpp.llama_chat_format as formats

    for name, handler in CHAT_FORMATS.items():
        assert callable(getattr(formats, handler, None)), (name, handler)


def test_a_tiny_vlm_answers_through_the_real_llava_handler(
    tiny_vlm: VLMBackend, sign: bytes
) -> None:
    with_image = tiny_vlm.ask("What does the sign say?", sign)
    text_only = tiny_vlm.ask("What does the sign say?")
    assert isinstance(with_image.text, str) and with_image.text  # random weights: any text
    assert 1 <= with_image.completion_tokens <= 8
    # the 16 image embeddings were decoded into the context, ahead of the question
    assert with_image.prompt_tokens - text_only.prompt_tokens >= TINY_IMAGE_TOKENS
    answer = vqa_action(tiny_vlm).executor("[IMG]", QUESTION, images=[sign])
    assert answer == with_image.text  # greedy: the same answer every time


def test_the_vlm_is_quiet_unless_verbose(tiny_vlm: VLMBackend, sign: bytes,
                                        capfd: pytest.CaptureFixture[str]) -> None:
    tiny_vlm.answer(sign, "What?")
    out, err = capfd.readouterr()
    assert out == "" and "image slice" not in err and "add_text" not in err


def test_images_or_prompts_the_vlm_cannot_take_are_tool_errors(
    tiny_vlm: VLMBackend, sign: bytes, tmp_path: Path
) -> None:
    with pytest.raises(ToolError, match=r"The vision model failed: .*bitmap"):
        tiny_vlm.answer(b"\x89PNG\r\n\x1a\n truncated", "What?")
    model, mmproj = write_tiny_vlm(tmp_path)
    cramped = VLMBackend(model, mmproj, n_ctx=200, n_threads=2)  # needs ~250
    with pytest.raises(ToolError, match="do not fit in its context of 200 tokens"):
        cramped.answer(sign, "What?")
    cramped.close()


def test_the_vlm_loads_without_extra_buffers_as_on_amx_cpus(tmp_path: Path, sign: bytes) -> None:
    _require("gguf")
    model, mmproj = write_tiny_vlm(tmp_path)
    backend = VLMBackend(model, mmproj, n_ctx=512, n_threads=2, max_tokens=4,
                         use_extra_bufts=False)  # the AMX crash workaround, forced
    assert backend.ask("What?", sign).prompt_tokens > TINY_IMAGE_TOKENS
    backend.close()


def test_the_vlm_takes_images_llama_cpp_cannot_decode_after_converting_them(
    tiny_vlm: VLMBackend,
) -> None:
    webp = render_sign(fmt="WEBP")
    assert webp[8:12] == b"WEBP"
    assert tiny_vlm.ask("What does the sign say?", webp).prompt_tokens > TINY_IMAGE_TOKENS


def test_the_vlm_serves_threads_one_at_a_time(tiny_vlm: VLMBackend, sign: bytes) -> None:
    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append(tiny_vlm.answer(sign, "What?")))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 3 and len(set(answers)) == 1


def test_a_projector_that_does_not_fit_the_model_is_a_config_error(
    tmp_path: Path, sign: bytes
) -> None:
    _require("gguf")
    model, mmproj = write_tiny_vlm(tmp_path, projector_dim=32)
    backend = VLMBackend(model, mmproj, n_ctx=512, n_threads=2)
    with pytest.raises(ConfigError, match=r"mismatch between text model \(n_embd = 64\) and "
                                          r"mmproj \(n_embd = 32\)"):
        backend.load()
    with pytest.raises(ConfigError, match="Failed to load CLIP model"):
        VLMBackend(model, model, n_ctx=512, n_threads=2).load()  # a text model as projector
    with pytest.raises(ToolError, match=r"The vision model failed: .*mismatch"):
        vqa_action(backend).executor("[IMG]", QUESTION, images=[sign])
    write_tiny_vlm(tmp_path)  # the right projector now; the failed load is remembered ...
    with pytest.raises(ConfigError, match="mismatch"):
        backend.load()
    backend.close()  # ... until close()
    assert backend.answer(sign, "What?")
    backend.close()
