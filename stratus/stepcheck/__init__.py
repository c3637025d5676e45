"""Agent-step failure detection (after EAGER): each tool call of an LLM agent is embedded and matched against a
knowledge base of failing steps; a match re-prompts the agent with the stored lesson.

- ``steps``: the text of a step, the failure kinds and their lessons;
- ``encoder``: the step encoder (MiniLM int8 over ONNX plus hashed character n-grams, then a projection trained
  contrastively on the project's own synthetic traces);
- ``checker``: the knowledge base and the nearest-neighbour decision.
"""
