"""Any role on an OpenAI-compatible server (llama.cpp's server, ``python -m llama_cpp.server``,
vLLM, ...), through ``langchain-openai`` (``pip install 'lumos-graph[openai]'``).

The graphs pass a GBNF grammar with each call, as they do to the local model; it goes into
the request body under the field the server reads: ``grammar`` for llama.cpp's servers,
``guided_grammar`` for vLLM's guided decoding, or nowhere for a server that takes none. The
model specs that lead here (``openai:URL``, ``vllm:URL``, ``openai-nogrammar:URL``) are
resolved in :mod:`lumos_graph.llm.models`.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from langchain_core.language_models import LanguageModelInput
from langchain_openai import ChatOpenAI

from lumos_graph.errors import ConfigError

__all__ = ["ChatOpenAICompatible"]


class ChatOpenAICompatible(ChatOpenAI):
    """``ChatOpenAI`` for OpenAI-compatible servers.

    A ``grammar=`` call option (GBNF text) is sent as ``grammar_field`` in the request body;
    ``max_tokens`` is sent as ``max_tokens`` (what these servers read, where ``ChatOpenAI``
    now writes ``max_completion_tokens``); :meth:`load` checks the server answers.

    Example:
        >>> model = ChatOpenAICompatible(base_url="http://127.0.0.1:8080/v1",
        ...                              model="default", api_key="none")  # doctest: +SKIP
    """

    grammar_field: Literal["grammar", "guided_grammar"] | None = "grammar"
    """The request field of a GBNF grammar; ``None``: grammars are not sent."""

    @property
    def accepts_grammar(self) -> bool:
        """Graphs pass grammars only to models that take them."""
        return self.grammar_field is not None

    def load(self) -> None:
        """Fail early, in one line, when the server does not answer.

        Raises:
            ConfigError: no answer from ``{base_url}/models``.
        """
        try:
            reply = httpx.get(f"{self.openai_api_base}/models", timeout=10)
            reply.raise_for_status()
        except httpx.HTTPError as error:
            raise ConfigError(
                f"the OpenAI-compatible server at {self.openai_api_base} does not answer "
                f"({type(error).__name__}); start it, or check the URL") from None

    def _get_request_payload(self, input_: LanguageModelInput, *,
                             stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        grammar = kwargs.pop("grammar", None)
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        if "max_completion_tokens" in payload:
            payload["max_tokens"] = payload.pop("max_completion_tokens")
        if grammar and self.grammar_field:
            payload["extra_body"] = {**(payload.get("extra_body") or {}),
                                     self.grammar_field: grammar}
        return payload
