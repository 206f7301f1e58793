"""Your own tools as LUMOS actions: a plain typed function and a LangChain tool, beside the maths set.

    python examples/bring_your_own_tool.py

A tool's name, the first line of its description and its argument names go into the grounding
prompt. With the default model the agent grounds the plan into one Python program that calls
the tools as functions (``apply_discount(6 * unit_price("apple"), 10)``), run by this process
under Code's time limit; with action lines (``grounding="actions"``, other models) each tool is
an action of its own, ``R1 = unit_price(apple)``, and the grammar admits only tools that exist.
Arguments are converted to the annotated types; a tool that raises produces an observation,
never a crash.
"""

from langchain_core.tools import tool

from lumos_graph import create_actions, create_lumos_agent

PRICES = {"apple": 0.5, "bread": 2.25, "milk": 1.2}


def unit_price(item: str) -> float:
    """Look up the price in dollars of one unit of a grocery item."""
    name = item.strip().lower().rstrip("s")
    if name not in PRICES:
        raise ValueError(f"no price for {item!r}; known items: {', '.join(PRICES)}")
    return PRICES[name]


@tool
def apply_discount(amount: float, percent: float) -> float:
    """Apply a percentage discount to an amount."""
    return round(amount * (1 - percent / 100), 2)


# The maths set plus the two tools; create_lumos_agent(actions=[...]) takes the same list.
actions = create_actions(["maths", unit_price, apply_discount])
print(actions.listing(), "\n")

agent = create_lumos_agent(actions=actions)
task = "What do 6 apples cost with a 10 percent discount?"
final = agent.invoke({"task": task})
for action in final["actions"]:
    print(f"{', '.join(action['outputs'])} = {action['tool']}({action['args']})",
          "->", action["result"] or action["error"])
print("answer:", final["answer"], f"({final['status']}: {final['reason']})")
