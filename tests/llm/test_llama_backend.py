"""The llama.cpp chat model: prompt formats, pooling, stop handling, CPU facts; then the real
default model (``@pytest.mark.model``) for generation, streaming, grammars and prefix reuse."""

from __future__ import annotations

import asyncio
import itertools
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)

from lumos_graph.errors import ConfigError, LumosError, ModelNotFoundError, RunError
from lumos_graph.llm import hardware, llama, llama_context, llama_pool
from lumos_graph.llm.llama import (
    ChatLlamaCpp,
    ContextOverflowError,
    KVStates,
    ModelPool,
    PoolKey,
    render_lumos,
)

# --------------------------------------------------------------------------- LUMOS format


def test_lumos_single_turn_golden() -> None:
    prompt = render_lumos([HumanMessage("Please provide a plan.\nTask: 2+2?")])
    assert prompt == "<|user|>\nPlease provide a plan.\nTask: 2+2?\n<|assistant|>\n"


def test_lumos_multi_turn_golden() -> None:
    prompt = render_lumos(
        [
            HumanMessage("Task: Leah had 32 dollars."),
            AIMessage("Subgoal 1: Calculate the amount Leah spent on milkshake."),
            HumanMessage("The executed result for Subgoal 1 is 4. Should we stop planning?"),
        ]
    )
    assert prompt == (
        "<|user|>\nTask: Leah had 32 dollars.\n"
        "<|assistant|>\nSubgoal 1: Calculate the amount Leah spent on milkshake.</s>\n"
        "<|user|>\nThe executed result for Subgoal 1 is 4. Should we stop planning?\n"
        "<|assistant|>\n"
    )


def test_lumos_keeps_braces_and_text_blocks_verbatim() -> None:
    message = HumanMessage(content=[{"type": "text", "text": "R1 = Code({x})"}, " ok"])
    assert render_lumos([message]) == "<|user|>\nR1 = Code({x}) ok\n<|assistant|>\n"


@pytest.mark.parametrize(
    "messages",
    [
        [SystemMessage("You are LUMOS."), HumanMessage("hi")],
        [HumanMessage("hi"), AIMessage("hello")],
        [],
    ],
)
def test_lumos_rejects_conversations_it_cannot_express(messages: list[Any]) -> None:
    with pytest.raises(ConfigError):
        render_lumos(messages)


# --------------------------------------------------------------------------- construction


@pytest.fixture
def fake_path(tmp_path: Path) -> str:
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 64)
    return str(path)


def test_missing_model_file_is_a_clear_config_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="model file not found"):
        ChatLlamaCpp(model_path=str(tmp_path / "missing.gguf"))


def test_non_gguf_model_file_is_rejected_before_llama_cpp_sees_it(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x00\x01 safetensors or whatever")
    with pytest.raises(ConfigError, match="not a GGUF model"):
        ChatLlamaCpp(model_path=str(path))


def test_render_prompt_in_lumos_format_needs_no_model(fake_path: str) -> None:
    model = ChatLlamaCpp(model_path=fake_path, prompt_format="lumos")
    assert model.render_prompt([("user", "hi")]) == "<|user|>\nhi\n<|assistant|>\n"


def test_unknown_call_options_are_rejected_before_loading(fake_path: str) -> None:
    model = ChatLlamaCpp(model_path=fake_path, prompt_format="lumos")
    with pytest.raises(ConfigError, match="unknown call option"):
        model.invoke("hi", max_token=5)


def test_context_overflow_is_a_value_error_but_not_a_usage_error() -> None:
    assert issubclass(ContextOverflowError, ValueError)
    assert issubclass(ContextOverflowError, RunError)
    assert issubclass(RunError, LumosError)
    assert not issubclass(ContextOverflowError, ConfigError)


# --------------------------------------------------------------------------- pool keys


def test_equal_settings_share_a_key_and_load_settings_split_it(
    fake_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the fake file is no LoRA adapter; the adapter check has tests of its own
    monkeypatch.setattr("lumos_graph.llm.lora_gguf.check_lora_gguf", lambda lora, base: 0)
    base = ChatLlamaCpp(model_path=fake_path)
    link = tmp_path / "link.gguf"
    link.symlink_to(fake_path)
    same = ChatLlamaCpp(
        model_path=str(link), temperature=0.5, max_tokens=3, stop=["\n"], seed=1
    )
    assert base.pool_key() == same.pool_key()  # sampling settings and symlinks do not split
    flipped = not base.pool_key().use_extra_bufts
    for change in ({"n_ctx": 2048}, {"n_batch": 64}, {"n_threads": 7},
                   {"lora_path": fake_path}, {"use_extra_bufts": flipped}):
        assert ChatLlamaCpp(model_path=fake_path, **change).pool_key() != base.pool_key(), change


def test_defaults_come_from_the_cpu(fake_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    key = ChatLlamaCpp(model_path=fake_path).pool_key()
    assert key.n_threads == hardware.physical_cores()
    assert key.use_extra_bufts == (not hardware.has_amx())
    monkeypatch.setattr(llama, "_default_extra_bufts", lambda: False)  # as on an AMX CPU
    assert ChatLlamaCpp(model_path=fake_path).pool_key().use_extra_bufts is False
    explicit = ChatLlamaCpp(model_path=fake_path, use_extra_bufts=True)
    assert explicit.pool_key().use_extra_bufts is True  # the user's setting wins


def test_the_pool_loads_each_key_once_even_under_concurrency(
    fake_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[PoolKey] = []

    class FakeLlm:
        def close(self) -> None:
            pass

    def fake_load(key: PoolKey, verbose: bool) -> object:
        loads.append(key)
        return FakeLlm()

    monkeypatch.setattr(llama_pool, "_load_llama", fake_load)
    pool = ModelPool()
    key = ChatLlamaCpp(model_path=fake_path).pool_key()
    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(pool.get(key))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1 and all(g is got[0] for g in got)
    other = ChatLlamaCpp(model_path=fake_path, n_ctx=512).pool_key()
    assert pool.get(other) is not got[0]
    assert pool.keys() == [key, other]


# --------------------------------------------------------------------------- stop sequences


def scan(stops: list[str], pieces: list[str]) -> tuple[list[str], bool]:
    scanner = llama_pool.StopScanner(stops)
    out = []
    for piece in pieces:
        text, stopped = scanner.feed(piece)
        out.append(text)
        if stopped:
            return out, True
    out.append(scanner.flush())
    return out, False


def test_stop_sequence_split_across_pieces_is_cut_and_never_emitted() -> None:
    pieces = ["R1 = QA(x)", "\nObs", "ervation: 3"]
    assert scan(["\nObservation"], pieces) == (["R1 = QA(x)", "", ""], True)


def test_held_back_partial_match_is_released_when_it_does_not_complete() -> None:
    assert scan(["###"], ["a#", "#b", "c"]) == (["a", "##b", "c", ""], False)


def test_earliest_stop_sequence_wins() -> None:
    assert scan(["world", "lo"], ["hello world"]) == (["hel"], True)


def test_no_stop_sequences_emit_everything() -> None:
    assert scan([], ["a", "b"]) == (["a", "b", ""], False)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="ab\n#", max_size=30),
    stop=st.text(alphabet="ab\n#", min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=30), max_size=6),
)
def test_streamed_output_is_the_text_up_to_the_stop_however_it_is_split(
    text: str, stop: str, cuts: list[int]
) -> None:
    bounds = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    pieces = [text[i:j] for i, j in itertools.pairwise(bounds)]
    out, stopped = scan([stop], pieces)
    found = text.find(stop)
    assert "".join(out) == (text[:found] if found >= 0 else text)
    assert stopped == (found >= 0)


# --------------------------------------------------------------------------- KV state choice


class FakeLlama:
    """Just enough of ``Llama`` for :class:`KVStates` with save/restore faked."""

    def __init__(self, n_ctx: int = 64) -> None:
        self.input_ids = np.zeros(n_ctx, dtype=np.intc)
        self.n_tokens = 0

    def run(self, tokens: list[int]) -> None:
        prefix = llama_context.common_prefix(self.input_ids[: self.n_tokens], np.asarray(tokens))
        self.input_ids[prefix : len(tokens)] = tokens[prefix:]
        self.n_tokens = len(tokens)


@pytest.fixture
def states(monkeypatch: pytest.MonkeyPatch) -> KVStates:
    kv = KVStates(capacity=2)

    def save(llm: FakeLlama, live: np.ndarray) -> Any:
        return llama_context._SavedState(live.copy(), None, 4)

    def restore(llm: FakeLlama, saved: Any) -> None:
        llm.input_ids[: len(saved.tokens)] = saved.tokens
        llm.n_tokens = len(saved.tokens)

    monkeypatch.setattr(kv, "_save", save)
    monkeypatch.setattr(kv, "_restore", restore)
    return kv


def turn(kv: KVStates, llm: FakeLlama, prompt: list[int], output: list[int]) -> bool:
    restored = kv.prepare(llm, np.asarray(prompt, dtype=np.intc))  # type: ignore[arg-type]
    llm.run(prompt + output)
    return restored


def test_alternating_roles_restore_their_own_state(states: KVStates) -> None:
    llm = FakeLlama()
    planner, grounder = [1, 2, 3, 4], [1, 9, 9, 9, 9]
    assert not turn(states, llm, planner, [5])
    assert not turn(states, llm, grounder, [7])  # shares only token 1: planner stashed
    assert states.token_counts() == [5]
    assert turn(states, llm, planner + [5, 6], [8])  # planner extends its own turn
    assert states.token_counts() == [5, 6]  # grounder stashed after the restored planner
    assert turn(states, llm, grounder + [7, 3], [0])
    assert states.token_counts() == [6, 7]  # the planner's longer state replaced its prefix


def test_the_live_context_is_kept_when_it_is_the_best_prefix(states: KVStates) -> None:
    llm = FakeLlama()
    turn(states, llm, [1, 2, 3], [4])
    assert not turn(states, llm, [1, 2, 3, 4, 5], [6])
    assert len(states) == 0  # nothing was overwritten, nothing saved


def test_saved_states_are_bounded_least_recently_used_first(states: KVStates) -> None:
    llm = FakeLlama()
    for role in range(4):
        turn(states, llm, [role + 10, 1, 2], [3])
    assert len(states) == 2
    assert [int(s.tokens[0]) for s in states._saved] == [11, 12]


def test_saved_states_stay_within_the_byte_budget(states: KVStates) -> None:
    states.capacity, states.max_bytes = 10, 10  # each fake state weighs 4 bytes
    llm = FakeLlama()
    for role in range(4):
        turn(states, llm, [role + 10, 1, 2], [3])
    assert (states.nbytes(), len(states)) == (8, 2)


# --------------------------------------------------------------------------- hardware

XEON_2S_HT = "\n\n".join(
    f"processor\t: {i}\nphysical id\t: {i // 4}\ncore id\t\t: {(i % 4) // 2}\n"
    f"flags\t\t: fpu sse avx2 avx512f amx_bf16 amx_tile amx_int8"
    for i in range(8)
)
ARM = "processor\t: 0\nFeatures\t: fp asimd\n\nprocessor\t: 1\nFeatures\t: fp asimd\n"
LAPTOP = "processor\t: 0\nphysical id\t: 0\ncore id\t\t: 0\nflags\t\t: fpu avx2 fma\n"


def test_physical_cores_count_distinct_socket_core_pairs() -> None:
    assert hardware.physical_cores(XEON_2S_HT) == 4  # 2 sockets x 2 cores, hyper-threaded
    assert hardware.physical_cores(LAPTOP) == 1


def test_physical_cores_fall_back_to_the_cpu_count_without_core_ids() -> None:
    assert hardware.physical_cores(ARM) >= 1
    assert 1 <= hardware.physical_cores() <= hardware.available_cpus()


def test_amx_is_read_from_the_flags() -> None:
    assert hardware.has_amx(XEON_2S_HT) is True
    assert hardware.has_amx(LAPTOP) is False
    assert "avx2" in hardware.cpu_flags(LAPTOP)


def test_amx_unknown_is_assumed_on_intel_but_not_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware.sys, "platform", "win32")
    monkeypatch.setattr(hardware.platform, "machine", lambda: "AMD64")
    monkeypatch.setattr(hardware.platform, "processor", lambda: "Intel64 Family 6, GenuineIntel")
    assert hardware.has_amx() is True
    monkeypatch.setattr(hardware.platform, "processor", lambda: "AMD64 Family 25, AuthenticAMD")
    assert hardware.has_amx() is False
    monkeypatch.setattr(hardware.sys, "platform", "darwin")
    assert hardware.has_amx() is False


# =========================================================================== real model

COUNT = [("user", "Count from 1 to 20, separated by commas. Output only the numbers.")]
CAPITAL = [("user", "What is the capital of France? Answer with one word.")]
ACTIONS_GBNF = r"""root ::= action ("; " action)*
action ::= "R" [1-9] " = " name "(" [^()\n;]+ ")"
name ::= "Calculator" | "SetEquation" | "SolveEquation"
"""


@pytest.fixture(scope="module")
def model(default_gguf: Path) -> ChatLlamaCpp:
    return ChatLlamaCpp(model_path=str(default_gguf), max_tokens=16)


@pytest.mark.model
def test_generate_reports_usage_and_what_the_model_did(model: ChatLlamaCpp) -> None:
    reply = model.invoke(CAPITAL)
    assert "Paris" in reply.content
    usage = reply.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] == model.get_num_tokens_from_messages(
        [HumanMessage(CAPITAL[0][1])]
    )
    assert usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    meta = reply.response_metadata
    assert meta["finish_reason"] == "stop"
    assert meta["prompt_tokens_evaluated"] + meta["prompt_tokens_cached"] == usage["input_tokens"]
    assert meta["prompt_tokens_evaluated"] >= 1
    assert meta["model_seconds"] > 0


@pytest.mark.model
def test_the_loaded_model_uses_the_amx_workaround_when_needed(model: ChatLlamaCpp) -> None:
    llm = model.pooled().llm
    assert bool(llm.model_params.use_extra_bufts) == (not hardware.has_amx())


@pytest.mark.model
def test_streaming_yields_tokens_that_join_to_the_reply(model: ChatLlamaCpp) -> None:
    chunks = list(model.stream(COUNT))
    texts = [str(c.content) for c in chunks if c.content]
    assert len(texts) >= 5
    assert re.match(r"1,\s?2,\s?3", "".join(texts))
    assert all(c.usage_metadata is None for c in chunks[:-1])
    last = chunks[-1]
    assert isinstance(last, AIMessageChunk) and last.usage_metadata is not None
    assert last.response_metadata["finish_reason"] == "length"
    assert "".join(texts) == model.invoke(COUNT).content


@pytest.mark.model
def test_multibyte_characters_survive_token_splits(model: ChatLlamaCpp) -> None:
    question = [("user", "Translate 'thank you very much' into Chinese. Reply with Chinese only.")]
    streamed = "".join(str(c.content) for c in model.stream(question))
    assert re.search(r"[\u4e00-\u9fff]", streamed)
    assert "\ufffd" not in streamed


@pytest.mark.model
def test_stop_sequences_from_the_field_and_the_call_combine(model: ChatLlamaCpp) -> None:
    reply = model.invoke(COUNT, stop=["5"], max_tokens=40)
    assert re.fullmatch(r"1,\s?2,\s?3,\s?4,\s?", str(reply.content))
    assert reply.response_metadata["finish_reason"] == "stop"
    field_stop = model.model_copy(update={"stop": ["3"]})
    assert re.fullmatch(r"1,\s?2,\s?", str(field_stop.invoke(COUNT, stop=["5"]).content))


@pytest.mark.model
def test_max_tokens_per_call_ends_with_finish_reason_length(model: ChatLlamaCpp) -> None:
    reply = model.invoke(COUNT, max_tokens=3)
    assert reply.response_metadata["finish_reason"] == "length"
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] == 3


@pytest.mark.model
def test_sampling_temperature_per_call(model: ChatLlamaCpp) -> None:
    reply = model.invoke(CAPITAL, temperature=0.7)
    assert reply.content and reply.response_metadata["finish_reason"] in ("stop", "length")


@pytest.mark.model
def test_grammar_constrains_the_output(model: ChatLlamaCpp) -> None:
    ask = [("user", "Compute (2+3)*4 step by step as calculator actions.")]
    action = r"R[1-9] = (Calculator|SetEquation|SolveEquation)\([^()\n;]+\)"
    for reply in (model.invoke(ask, grammar=ACTIONS_GBNF, max_tokens=24),
                  model.bind(grammar=ACTIONS_GBNF).invoke(ask, max_tokens=24)):
        text = str(reply.content)
        if reply.response_metadata["finish_reason"] == "stop":
            assert re.fullmatch(rf"{action}(; {action})*", text), text
        else:
            assert re.match(action, text), text
    choice = model.invoke(CAPITAL, grammar='root ::= "yes" | "no"')
    assert choice.content in ("yes", "no")  # forced away from the model's own answer


@pytest.mark.model
def test_an_invalid_grammar_is_a_config_error(model: ChatLlamaCpp) -> None:
    with pytest.raises(ConfigError, match="invalid GBNF grammar"):
        model.invoke(CAPITAL, grammar="root ::= (unclosed")


@pytest.mark.model
def test_two_roles_share_one_loaded_model(model: ChatLlamaCpp, default_gguf: Path) -> None:
    planner = ChatLlamaCpp(model_path=str(default_gguf), max_tokens=8, stop=["\n"])
    grounder = ChatLlamaCpp(model_path=str(default_gguf), prompt_format="lumos", temperature=0.3)
    assert planner.pooled() is grounder.pooled() is model.pooled()
    assert planner.pooled().llm is grounder.pooled().llm


@pytest.mark.model
def test_roles_with_different_seeds_share_the_model_and_keep_their_seeds(
    default_gguf: Path,
) -> None:
    name = [("user", "Invent a name for a new colour. Reply with the name only.")]
    hot = {"model_path": str(default_gguf), "temperature": 1.5, "max_tokens": 12}
    first, second = ChatLlamaCpp(**hot, seed=1), ChatLlamaCpp(**hot, seed=2)
    assert first.pooled() is second.pooled()  # the seed is per call: one load
    replies = [m.invoke(name).content for m in (first, second, first, second, first)]
    assert replies[2] == replies[4] and replies[1] == replies[3], replies


@pytest.mark.model
def test_alternating_roles_reuse_their_prefixes(default_gguf: Path) -> None:
    background = " ".join(f"Item {i} costs {3 * i} dollars." for i in range(40))
    roles: dict[str, list[BaseMessage]] = {
        "planner": [SystemMessage(f"You plan. {background}")],
        "grounder": [SystemMessage(f"You ground plans into actions. {background}")],
    }
    model = ChatLlamaCpp(model_path=str(default_gguf), max_tokens=12, stop=["\n"])
    for step in range(2):
        for conversation in roles.values():
            conversation.append(HumanMessage(f"Step {step}: what does item {step + 3} cost?"))
            reply = model.invoke(conversation)
            meta = reply.response_metadata
            assert reply.usage_metadata is not None
            if step == 0:
                assert meta["prompt_tokens_evaluated"] > 300  # first sight of this conversation
            else:  # only the new turn (and the previous output's re-tokenization) is evaluated
                assert meta["kv_state_restored"] is True
                assert meta["prompt_tokens_evaluated"] < 40, meta
                assert meta["prompt_tokens_cached"] > 300
            conversation.append(AIMessage(reply.content))


@pytest.mark.model
def test_concurrent_calls_decode_together_and_match_sequential_ones(model: ChatLlamaCpp) -> None:
    questions = [COUNT, CAPITAL, [("user", "Name the largest planet. One word.")]]
    sequential = [model.invoke(q).content for q in questions]
    results: dict[int, Any] = {}

    def ask(index: int) -> None:
        results[index] = model.invoke(questions[index % 3]).content

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[i] for i in range(6)] == sequential * 2


def _decode_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the number of tokens of every llama_decode batch."""
    import llama_cpp

    sizes: list[int] = []
    real = llama_cpp.llama_decode

    def counted(ctx: Any, batch: Any) -> int:
        sizes.append(int(batch.n_tokens))
        return int(real(ctx, batch))

    monkeypatch.setattr(llama_cpp, "llama_decode", counted)
    return sizes


@pytest.mark.model
def test_more_concurrent_calls_than_sequences_queue_and_all_finish(
    model: ChatLlamaCpp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lumos_graph.llm.llama_context import MAX_SEQUENCES

    sizes = _decode_sizes(monkeypatch)
    n = MAX_SEQUENCES + 3
    with ThreadPoolExecutor(n) as pool:
        replies = list(pool.map(lambda i: model.invoke(COUNT, max_tokens=6), range(n)))
    assert len({r.content for r in replies}) == 1  # greedy: the same reply for everyone
    assert max(sizes) >= 2  # some steps carried several sequences
    # one step decodes at most one new token per running sequence, plus prompts
    assert all(r.response_metadata["finish_reason"] == "length" for r in replies)


@pytest.mark.model
def test_sampled_calls_with_their_own_seeds_differ_and_repeat(model: ChatLlamaCpp) -> None:
    prompt = [("user", "Write one short sentence about a cat.")]

    def sample(seed: int) -> str:
        return str(model.invoke(prompt, temperature=1.0, seed=seed, max_tokens=12).content)

    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(sample, [11, 12, 13, 14]))
    assert len(set(together)) >= 3
    # a seed repeats its sample (in a batch the logits may differ in the last bits, as with
    # any change of batch in llama.cpp, so only alone-vs-alone is exact)
    assert sample(12) == sample(12)


@pytest.mark.model
def test_replies_report_their_log_probability(model: ChatLlamaCpp) -> None:
    reply = model.invoke(CAPITAL)
    assert reply.response_metadata["logprob"] < 0


@pytest.mark.model
def test_a_stream_closed_early_frees_its_sequence(model: ChatLlamaCpp) -> None:
    stream = model.stream(COUNT, max_tokens=16)
    next(stream)
    stream.close()
    engine = model.pooled().engine
    assert not engine._running and not engine._waiting
    assert "Paris" in model.invoke(CAPITAL).content  # the model still works afterwards


@pytest.mark.model
def test_async_calls_use_the_same_path(model: ChatLlamaCpp) -> None:
    async def run() -> tuple[Any, list[str]]:
        reply = await model.ainvoke(CAPITAL)
        return reply, [str(c.content) async for c in model.astream(CAPITAL)]

    reply, pieces = asyncio.run(run())
    assert "Paris" in reply.content and "".join(pieces) == reply.content


@pytest.mark.model
def test_langgraph_message_streaming_shows_tokens(model: ChatLlamaCpp) -> None:
    from langgraph.graph import END, START, MessagesState, StateGraph

    def call(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("call", call)
    graph.add_edge(START, "call")
    graph.add_edge("call", END)
    start: Any = {"messages": COUNT}
    parts: Any = graph.compile().stream(start, stream_mode="messages")
    streamed = [message.content for message, _ in parts]
    assert len([s for s in streamed if s]) >= 5


@pytest.mark.model
def test_a_program_using_the_model_exits_quietly(default_gguf: Path) -> None:
    script = (
        "from lumos_graph.llm.llama import ChatLlamaCpp\n"
        f"model = ChatLlamaCpp(model_path={str(default_gguf)!r}, max_tokens=2)\n"
        "print(model.invoke('hi', grammar='root ::= \"ok\"').content)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")


@pytest.mark.model
def test_a_prompt_longer_than_the_context_is_a_run_failure(default_gguf: Path) -> None:
    small = ChatLlamaCpp(model_path=str(default_gguf), n_ctx=64)
    with pytest.raises(ContextOverflowError, match="the context holds 64"):
        small.invoke([("user", "word " * 100)])
