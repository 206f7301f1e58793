"""Training data: LUMOS conversation files, loss masks from the chat template, token batches.

A conversation file is JSONL, one ``{"dataset", "id", "messages": [{"role", "content"}]}``
per line, one file per module and formulation (``lumos_{domain}_{plan|ground}_{formulation}``).

Loss masks are built from the tokenizer's own chat template, so the adapter learns exactly the
text the backend renders at run time: the conversation is rendered prefix by prefix (the prompt
before each assistant turn with the generation prompt, then the turn itself) and the token
sequences are checked to be prefixes of one another. Everything is masked (-100) except each
assistant turn's content and its end-of-turn token (``<|im_end|>`` for Qwen); the whitespace the
template writes after the end token is masked, since generation stops at the end token.

Nothing here imports torch.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lumos_graph.agent import protocol
from lumos_graph.errors import ConfigError

IGNORE_INDEX = -100
"""The label of a token that carries no loss (PyTorch's ``cross_entropy`` default)."""

_MODULE_RE = re.compile(r"(?:^|[_\-.])(plan|ground)(?:[_\-.]|$)")
_ROLES = frozenset({"system", "user", "assistant"})


class ChatTokenizer(Protocol):
    """What the masks need of a tokenizer (a ``transformers`` tokenizer has it all)."""

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...

    def encode(self, text: str, **kwargs: Any) -> list[int]: ...


@dataclass(frozen=True)
class Conversation:
    """One training conversation.

    Attributes:
        messages: ``{"role", "content"}`` turns (system, user, assistant).
        module: ``"plan"`` or ``"ground"`` (from the file name or the ``dataset`` field), or
            ``None`` when neither names a module.
        source: ``file:line`` for messages.
    """

    messages: tuple[Mapping[str, str], ...]
    module: str | None
    source: str
    dataset: str = ""
    id: str = ""


@dataclass(frozen=True)
class Example:
    """A tokenized conversation: ``labels[i]`` is ``input_ids[i]`` or :data:`IGNORE_INDEX`."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    source: str = ""

    @property
    def target_tokens(self) -> int:
        """Tokens that carry loss."""
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


@dataclass
class DataStats:
    """What happened to the conversations on the way to examples."""

    conversations: int = 0
    examples: int = 0
    tokens: int = 0
    target_tokens: int = 0
    dropped_too_long: int = 0
    dropped_no_target: int = 0
    dropped_template_mismatch: int = 0
    left_out_over_limit: int = 0
    first_problem: str = ""
    """The first conversation dropped off the template, and why."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class TemplateMismatchError(ValueError):
    """The chat template does not render a conversation as a sequence of token prefixes."""


# --------------------------------------------------------------------------- files


def conversation_files(path: str | Path) -> list[Path]:
    """The ``.jsonl`` files of ``path`` (a file, or a folder searched recursively), sorted.

    Raises:
        ConfigError: the path does not exist or holds no ``.jsonl`` file.
    """
    root = Path(path).expanduser()
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ConfigError(f"training data not found: {root}")
    files = sorted(p for p in root.rglob("*.jsonl") if p.is_file())
    if not files:
        raise ConfigError(f"no .jsonl conversation files in {root}")
    return files


def module_of(name: str) -> str | None:
    """``"plan"``/``"ground"`` when a file or dataset name says so (``lumos_maths_plan_iterative``)."""
    match = _MODULE_RE.search(Path(name).name.lower())
    return match.group(1) if match else None


def _module_system(stem: str) -> Mapping[str, str] | None:
    """The system turn of a LUMOS module file (``lumos_maths_plan_onetime``): what the trained
    module sees at inference (``ChatLlamaCpp(module_system=True)``)."""
    match = re.search(r"_(plan|ground)_(onetime|iterative)$", stem.lower())
    if not match:
        return None
    mode = "onepass" if match.group(2) == "onetime" else "iterative"
    return protocol.module_system(match.group(1), mode)  # type: ignore[arg-type]


def read_conversations(files: Iterable[Path]) -> Iterator[Conversation]:
    """Every conversation of ``files``. A LUMOS module file's conversations get the module's
    system turn (:func:`~lumos_graph.agent.protocol.module_system`) unless they have one.

    Raises:
        ConfigError: a line is not JSON, or has no list of ``{"role", "content"}`` messages.
    """
    for file in files:
        file_module = module_of(file.stem)
        system = _module_system(file.stem)
        with file.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                where = f"{file}:{number}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ConfigError(f"{where}: not JSON ({error.msg})") from None
                messages = _messages(record, where)
                if system is not None and messages[0]["role"] != "system":
                    messages = (system, *messages)
                dataset = str(record.get("dataset", "")) if isinstance(record, dict) else ""
                yield Conversation(
                    messages=messages,
                    module=file_module or module_of(dataset),
                    source=where,
                    dataset=dataset,
                    id=str(record.get("id", "")),
                )


def _messages(record: Any, where: str) -> tuple[Mapping[str, str], ...]:
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or not messages:
        raise ConfigError(f"{where}: expected {{'messages': [{{'role', 'content'}}, ...]}}")
    turns: list[Mapping[str, str]] = []
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if role not in _ROLES or not isinstance(content, str):
            raise ConfigError(
                f"{where}: each message needs a role (system, user, assistant) and a text content"
            )
        turns.append({"role": role, "content": content})
    return tuple(turns)


# --------------------------------------------------------------------------- loss masks


def _render(tokenizer: ChatTokenizer, messages: Sequence[Mapping[str, str]], prompt: bool) -> str:
    text = tokenizer.apply_chat_template(
        [dict(m) for m in messages], tokenize=False, add_generation_prompt=prompt
    )
    if not isinstance(text, str):
        raise ConfigError("the tokenizer's chat template did not render text")
    return text


def _encode(tokenizer: ChatTokenizer, text: str) -> list[int]:
    # The template writes any BOS itself (the backend tokenizes the same way: no second BOS).
    return list(tokenizer.encode(text, add_special_tokens=False))


def _is_prefix(short: Sequence[int], long: Sequence[int]) -> bool:
    return len(short) <= len(long) and list(long[: len(short)]) == list(short)


def encode_conversation(
    tokenizer: ChatTokenizer, messages: Sequence[Mapping[str, str]], source: str = ""
) -> Example:
    """Tokenize a conversation with loss on every assistant turn's content and end token.

    Turns after the last assistant turn are dropped (they teach nothing).

    Raises:
        TemplateMismatchError: a rendered prefix does not tokenize to a prefix of the whole
            conversation (the template rewrites earlier turns, or a token straddles a turn
            boundary), or the conversation does not start with a system or user turn.
    """
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    messages = list(messages[: last + 1])
    if last < 0:
        return Example((), (), source)
    if messages[0]["role"] == "assistant":
        raise TemplateMismatchError(f"{source}: the conversation starts with an assistant turn")
    full = _encode(tokenizer, _render(tokenizer, messages, prompt=False))
    labels = [IGNORE_INDEX] * len(full)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _encode(tokenizer, _render(tokenizer, messages[:i], prompt=True))
        turn_text = _render(tokenizer, messages[: i + 1], prompt=False)
        turn = _encode(tokenizer, turn_text)
        # Through the end-of-turn token, without the whitespace the template writes after it.
        through_end = _encode(tokenizer, turn_text.rstrip())
        if not (
            _is_prefix(prompt, through_end)
            and _is_prefix(through_end, turn)
            and _is_prefix(turn, full)
        ):
            raise TemplateMismatchError(
                f"{source}: assistant turn {i} does not tokenize as a continuation of its prompt"
            )
        labels[len(prompt) : len(through_end)] = full[len(prompt) : len(through_end)]
    return Example(tuple(full), tuple(labels), source)


def build_examples(
    tokenizer: ChatTokenizer, conversations: Iterable[Conversation], max_seq_len: int
) -> tuple[list[Example], DataStats]:
    """Tokenize ``conversations``; longer than ``max_seq_len``, without assistant turn or
    off the template: dropped and counted in the returned stats."""
    examples: list[Example] = []
    stats = DataStats()
    for conversation in conversations:
        stats.conversations += 1
        try:
            example = encode_conversation(tokenizer, conversation.messages, conversation.source)
        except TemplateMismatchError as error:
            stats.dropped_template_mismatch += 1
            stats.first_problem = stats.first_problem or str(error)
            continue
        if example.target_tokens == 0:
            stats.dropped_no_target += 1
            continue
        if len(example.input_ids) > max_seq_len:
            stats.dropped_too_long += 1
            continue
        examples.append(example)
        stats.examples += 1
        stats.tokens += len(example.input_ids)
        stats.target_tokens += example.target_tokens
    return examples, stats


# --------------------------------------------------------------------------- batches


def subsample(
    examples: list[Example], stats: DataStats, limit: int | None, seed: int
) -> list[Example]:
    """At most ``limit`` examples, a seeded random subset (in their original order); the
    stats then count what is used and how many were left out."""
    if limit is None or len(examples) <= limit:
        return examples
    keep = sorted(random.Random(seed).sample(range(len(examples)), limit))
    chosen = [examples[i] for i in keep]
    stats.left_out_over_limit += len(examples) - limit
    stats.examples = limit
    stats.tokens = sum(len(e.input_ids) for e in chosen)
    stats.target_tokens = sum(e.target_tokens for e in chosen)
    return chosen


def make_batches(
    lengths: Sequence[int], batch_tokens: int, seed: int, window: int = 64
) -> list[list[int]]:
    """Group example indices into micro-batches of at most ``batch_tokens`` padded tokens.

    The order is a seeded shuffle; within windows of ``window`` examples, similar lengths
    are batched together so little is padding. An example longer than the budget is a batch
    of its own. The same ``seed`` always gives the same batches (resuming relies on it).
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i], reverse=True)
        batch: list[int] = []
        for index in chunk:
            # sorted longest first, so the batch's first example sets its padded width
            width = lengths[batch[0]] if batch else lengths[index]
            if batch and (len(batch) + 1) * width > batch_tokens:
                batches.append(batch)
                batch = []
            batch.append(index)
        if batch:
            batches.append(batch)
    rng.shuffle(batches)
    return batches
