"""GBNF grammars for plan and ground outputs, built from the protocol's delimiters.

A local model decoding under these grammars can only produce text that
:mod:`lumos_graph.agent.protocol` parses. Grammars are plain strings, built once per distinct
argument set (``functools.lru_cache``); the llama backend compiles each text once as well.
"""

from __future__ import annotations

from functools import lru_cache

from lumos_graph.agent import protocol as p

__all__ = ["ground_grammar", "plan_grammar"]

# One subgoal's text: anything on the line but the item separator.
_TEXT = 'text ::= [^;\\n] [^;\\n]*'
# Action arguments: balanced (), [] with no top-level ';' (it separates actions) or newline.
_ARGS = "\n".join(
    [
        "args ::= piece piece*",
        "piece ::= [^()\\[\\];\\n] | \"(\" inner \")\" | \"[\" inner \"]\"",
        "inner ::= ([^()\\[\\]\\n] | \"(\" inner \")\" | \"[\" inner \"]\")*",
    ]
)


def _lit(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


@lru_cache(maxsize=64)
def plan_grammar(mode: str, k: int = 1) -> str:
    """Grammar of a planner output.

    Args:
        mode: ``"onepass"`` (all subgoals on one line) or ``"iterative"``.
        k: for iterative mode, the number of the subgoal this turn may propose; turn 1 must
            propose ``Subgoal 1``, later turns either stop or propose ``Subgoal k``.
    """
    sep = p.ITEM_SEP + "Subgoal "
    if mode == "onepass":
        root = f'root ::= {_lit(p.subgoal_text(1, ""))} text ({_lit(sep)} [1-9] [0-9]* ": " text)*'
    elif k <= 1:
        root = f"root ::= {_lit(p.subgoal_text(1, ''))} text"
    else:
        head = p.CONTINUE_DECISION + p.subgoal_text(k, "")
        root = f"root ::= {_lit(p.STOP_DECISION)} | {_lit(head)} text"
    return f"{root}\n{_TEXT}\n"


@lru_cache(maxsize=64)
def ground_grammar(tools: tuple[str, ...], first_var: int = 1) -> str:
    """Grammar of a grounder output: ``R1 = Tool(args); R2, R3 = Tool(args)``.

    Args:
        tools: the enabled action names; no other name can be emitted.
        first_var: the number the first output variable must carry, so that variable
            numbering continues across iterative turns instead of overwriting ``R1``.
    """
    alternatives = " | ".join(f"{_lit(name + '(')} args \")\"" for name in tools)
    lines = [
        f"root ::= first {_lit(' = ')} action ({_lit(p.ITEM_SEP)} call)*",
        f"first ::= {_lit(f'R{first_var}')} (\", \" var)*",
        'call ::= var (", " var)* " = " action',
        'var ::= "R" [1-9] [0-9]*',
        f"action ::= {alternatives}",
        _ARGS,
    ]
    return "\n".join(lines) + "\n"
