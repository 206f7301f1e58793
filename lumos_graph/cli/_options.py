"""Options shared by the commands that run a model (``ask``, ``chat``, ``eval``): the agent's
(mode, models, caps, tools), how a model loads (``--threads``, ``--n-ctx``) and decodes
(``--temperature``, ``--seed``), and loading the models they name."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, TextIO

from lumos_graph.cli._view import Spinner

__all__ = [
    "add_agent_options", "add_model_options", "build_agent", "load_models", "model_overrides",
]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 5.0:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 5")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < 2**32 - 1:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 4294967294")
    return value


def add_agent_options(parser: argparse.ArgumentParser, *, images: bool = False) -> None:
    """Add the options of a LUMOS agent (``ask``, ``chat``): mode, models, caps, tools."""
    parser.add_argument("--mode", choices=("onepass", "iterative"), default=None,
                     help="LUMOS formulation (default: iterative with the qa or vqa tools, as "
                          "LUMOS-I is the better QA agent; onepass otherwise)")
    parser.add_argument("--model", default="default",
                        help="preset name, path to a .gguf file, hf:owner/repo/file.gguf, or "
                             "an OpenAI-compatible server: openai:http://host:port/v1[#MODEL] "
                             "(vllm:URL for vLLM) (default: the default model; with only the "
                             "maths tools, with the shipped LUMOS maths adapter)")
    parser.add_argument("--grounding", choices=("actions", "program", "sql"), default=None,
                        help="ground into LUMOS action lines, or (onepass) into one Python "
                             "program run by Code (maths) or one SQL query (sql) (default for "
                             "the default model in onepass: program with only the maths tools, "
                             "sql with only the sql tools, the winners on validation; actions "
                             "otherwise)")
    parser.add_argument("--planner-model", default=None, help="a different model for planning")
    parser.add_argument("--grounder-model", default=None, help="a different model for grounding")
    parser.add_argument("--max-model-calls", type=int, default=16, help="cap on model calls")
    parser.add_argument("--max-subgoals", type=int, default=8, help="cap on subgoals")
    parser.add_argument("--samples", type=int, default=None, metavar="K",
                     help="self-consistency: K runs (greedy + sampled) decoded together, the "
                          "answer most agree on wins (default: 6 programs of one plan for the "
                          "default maths agent, else 1)")
    parser.add_argument("--no-grammar", action="store_true",
                     help="decode without the GBNF grammar (for comparison)")
    tools = parser.add_argument_group("tools")
    tools.add_argument("--tools", default="maths",
                       help="comma-separated tool sets: maths, qa, sql, vqa (default: maths)")
    tools.add_argument("--db", default=None,
                       help="sql: a SQLite file or a SQLAlchemy URL (postgresql://...)")
    tools.add_argument("--allow-writes", action="store_true",
                       help="sql: allow writing to the database (read-only by default)")
    tools.add_argument("--kb", default=None,
                       help="qa: knowledge base file (default: the one 'lumos-graph index' "
                            "builds; the offline Wikipedia intros when there is none)")
    tools.add_argument("--web", action="store_true",
                       help="qa: search the web with DuckDuckGo first (knowledge base as fallback)")
    if images:
        tools.add_argument("--image", action="append", default=[], metavar="FILE",
                           help="vqa: an image for the task (a path or URL; repeatable)")
    tools.add_argument("--vqa-model", default=None, help="vqa: a vision-language GGUF")
    tools.add_argument("--vqa-mmproj", default=None,
                       help="vqa: the projector GGUF of --vqa-model (without one, OCR reads text)")
    tools.add_argument("--vqa-chat-format", default="llava-1-5",
                       help="vqa: chat handler of --vqa-model: llava-1-5 (default), llava-1-6, "
                            "moondream, nanollava, minicpm-v-2.6, qwen2.5-vl, ...")


def add_model_options(parser: argparse.ArgumentParser, *, samples: bool = False) -> None:
    """Add ``--threads``, ``--n-ctx``, ``--temperature`` and ``--seed`` to ``parser``."""
    group = parser.add_argument_group("model settings")
    group.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                       help="CPU threads of the model (default: one per physical core)")
    group.add_argument("--n-ctx", type=_positive_int, default=None, metavar="TOKENS",
                       help="context window of the model (default 4096)")
    sampled = (" with --samples K or the default maths agent's vote, the sampled branches' "
               "temperature (default 0.7; the first branch stays greedy)" if samples else "")
    group.add_argument("--temperature", type=_temperature, default=None, metavar="T",
                       help=f"sampling temperature (default 0: greedy);{sampled}")
    group.add_argument("--seed", type=_seed, default=None, metavar="S",
                       help="sampling seed, for runs that repeat (default: a new one per call)")


def model_overrides(args: argparse.Namespace, *, sampling: bool = True) -> dict[str, Any]:
    """The ``ChatLlamaCpp`` fields the options set (nothing for options left out).

    ``sampling=False`` leaves ``temperature`` and ``seed`` to the caller (self-consistency
    branches take them instead of the model).
    """
    fields = {"n_threads": args.threads, "n_ctx": args.n_ctx}
    if sampling:
        fields.update(temperature=args.temperature, seed=args.seed)
    return {key: value for key, value in fields.items() if value is not None}


def load_models(err: TextIO, specs: Sequence[str], then: Any = None,
                overrides: dict[str, Any] | None = None) -> list[Any]:
    """One chat model per spec (equal specs share one), loaded now under a spinner rather
    than inside the first node. ``then(models)`` runs after the models are created and
    before they load (setup checks that need a model object but not its weights);
    ``overrides`` are ``ChatLlamaCpp`` fields (``--threads``, ``--temperature``, ...)."""
    from lumos_graph.llm.models import create_chat_model

    models = {spec: create_chat_model(spec, **(overrides or {})) for spec in dict.fromkeys(specs)}
    chosen = [models[spec] for spec in specs]
    if then is not None:
        then(chosen)
    local = [m for m in models.values() if hasattr(m, "pooled")]  # llama.cpp in this process
    for model in models.values():
        if not hasattr(model, "pooled"):
            model.load()  # a server: checks it answers (a clear error before any output)
    if local:
        with Spinner(err, "loading model", after=0.0):
            for model in local:
                model.load()
    return chosen


def tool_actions(args: argparse.Namespace, names: list[str], model: Any) -> Any:
    """The action set of the tool options (``--db``, ``--kb``, ``--web``, ``--vqa-*``) for tool
    sets ``names``; ``model`` answers the QA actions."""
    from lumos_graph.tools.toolsets import create_actions

    return create_actions(
        names, model=model, db=args.db, allow_writes=args.allow_writes,
        knowledge_base=args.kb, web=args.web, vqa_model=args.vqa_model,
        vqa_mmproj=args.vqa_mmproj, vqa_chat_format=args.vqa_chat_format)


def build_agent(args: argparse.Namespace, names: list[str], mode: str, err: TextIO,
                **agent_options: Any) -> Any:
    """The LUMOS agent the agent options describe, for tool sets ``names`` and ``mode``, its
    models loaded (``"default"`` with only the maths tools: the trained adapter). A bad
    ``--db``, ``--kb``, ... fails before any model loads. ``agent_options`` go to
    ``create_lumos_agent`` (e.g. ``checkpointer``)."""
    from lumos_graph.graphs.lumos import create_lumos_agent, default_grounding, default_samples
    from lumos_graph.llm.models import DEFAULT_PRESET, lumos_default
    from lumos_graph.tools.toolsets import is_maths_only

    built: list[Any] = []

    def build_actions(models: list[Any]) -> None:
        built.append(tool_actions(args, names, models[1]))

    specs = [lumos_default(spec, maths_only=is_maths_only(names))
             for spec in (args.planner_model or args.model, args.grounder_model or args.model)]
    grounding = args.grounding or default_grounding(
        None if args.planner_model or args.grounder_model else args.model, mode, names)
    if grounding == "program" and args.model == "default" and not (
            args.planner_model or args.grounder_model):
        # the plain model plans and writes the programs (it beat the shipped adapter as the
        # planner on maths-val; the adapter was trained for action lines)
        specs = [DEFAULT_PRESET, DEFAULT_PRESET]
    chosen = not (args.grounding or args.planner_model or args.grounder_model)
    samples = args.samples if args.samples is not None else default_samples(
        grounding if chosen else None)
    if args.samples is None and args.temperature == 0:
        samples = 1  # --temperature 0 asks for the greedy run, not the default's vote
    branches = samples > 1  # --temperature/--seed go to the sampled branches
    planner, grounder = load_models(err, specs, then=build_actions,
                                    overrides=model_overrides(args, sampling=not branches))
    if branches and args.temperature is not None:
        agent_options["temperature"] = args.temperature
    if branches and args.seed is not None:
        agent_options["seed"] = args.seed
    return create_lumos_agent(
        planner=planner,
        grounder=grounder,
        actions=built[0],
        mode=mode,  # type: ignore[arg-type]
        grounding=grounding,  # type: ignore[arg-type]
        max_model_calls=args.max_model_calls,
        max_subgoals=args.max_subgoals,
        use_grammar=not args.no_grammar,
        samples=samples,
        **agent_options,
    )
