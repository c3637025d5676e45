"""The exact prompt the local server sees for a conversation with a tool result: the result is in it.

The conversation is built by the real tool loop (against the scripted server, which records what the loop sends);
the same request is then rendered with the model's own chat template through llama_cpp's own formatter and
tokenizer (``render_prompt.py``, run by the server environment's Python), and sent to the running local server.
The server's ``prompt_tokens`` must equal the token count of that rendering, so the rendering *is* the server's
prompt, and the tool's output must be in it, inside the template's tool-response block. Under
``--chat_format chatml-function-calling`` the tool turn rendered empty and this failed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from stratus.contracts import DiagnoseRequest
from stratus.llm import LLMClient
from stratus.reasoners.llm import LLMDiagnosisReasoner, LLMOptions
from stratus.settings import ReasonerSettings
from tests.llm_server import MemoryTools, ScriptedLLM, tool_call

ROOT = Path(__file__).resolve().parent.parent
MARKER = "FATAL: password authentication failed for user geo_reader (marker 7f3a9c)"


def server_python() -> tuple[str, str]:
    out = subprocess.run(
        ["bash", "scripts/llm-local.sh", "python"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        pytest.fail(f"the local server is not built: {out.stderr.strip()} (run make llm-local)")
    python, model = out.stdout.split()
    return python, model


async def test_the_server_prompt_holds_the_tool_result(llm_settings: ReasonerSettings) -> None:
    tools = MemoryTools(
        [{"kind": "Pod", "metadata": {"name": "geo-1", "namespace": "ns"}, "status": {"phase": "Running"}}]
    )
    tools.pod_logs[("ns", "geo-1")] = MARKER
    submit = {
        "localisation": ["geo"],
        "system_level": "Application",
        "fault_type": "Authentication Issue",
        "summary": "s",
    }
    async with ScriptedLLM([tool_call("get_logs", {"pod": "geo-1"}), tool_call("submit_diagnosis", submit)]) as fake:
        reasoner = LLMDiagnosisReasoner(
            LLMClient(base_url=fake.base_url, model="local"), LLMOptions(max_steps=3, context_tokens=8192)
        )
        await reasoner.diagnose(DiagnoseRequest(incident_id="inc-t", scope="ns"), tools)
        await reasoner.aclose()
    request = fake.requests[1]  # the request after the tool call: it carries the result
    assert request["messages"][-1]["role"] == "tool" and MARKER in request["messages"][-1]["content"]

    python, model = server_python()
    job = json.dumps({"model": model, "request": request})
    out = subprocess.run(
        [python, str(ROOT / "tests_llm" / "render_prompt.py")], input=job, capture_output=True, text=True, check=True
    )
    rendered = json.loads(out.stdout)
    prompt: str = rendered["prompt"]
    assert MARKER in prompt, "the tool result is in the prompt the template renders"
    response = prompt[prompt.index(MARKER) - 200 : prompt.index(MARKER) + len(MARKER) + 40]
    assert "<tool_response>" in response and "</tool_response>" in response, response
    assert '"name": "get_logs"' in prompt  # the call the result answers is rendered too

    client = LLMClient.from_settings(llm_settings)
    try:
        reply = await client.chat(request["messages"], tools=request["tools"], tool_choice="auto", max_tokens=1)
    finally:
        await client.close()
    assert reply.usage.prompt_tokens == rendered["tokens"], "the rendering is exactly the server's prompt"
