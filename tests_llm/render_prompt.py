"""Render a chat request exactly as the local llama-cpp-python server does, with the model's own chat template.

Run by the *server's* Python (``scripts/llm-local.sh python``), which has llama_cpp: it reads ``{"model": PATH,
"request": {...chat completion body...}}`` on stdin and prints ``{"prompt": TEXT, "tokens": N}``. The template, the
special tokens and the tokenizer come from the GGUF file through llama_cpp's own classes, the ones the server uses.
"""

import json
import sys

from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

job = json.load(sys.stdin)
llama = Llama(model_path=job["model"], vocab_only=True, verbose=False)
eos = llama._model.token_get_text(llama.token_eos()) if llama.token_eos() != -1 else ""
bos = llama._model.token_get_text(llama.token_bos()) if llama.token_bos() != -1 else ""
formatter = Jinja2ChatFormatter(template=llama.metadata["tokenizer.chat_template"], eos_token=eos, bos_token=bos)
request = job["request"]
rendered = formatter(messages=request["messages"], tools=request.get("tools"), tool_choice=request.get("tool_choice"))
tokens = llama.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)
json.dump({"prompt": rendered.prompt, "tokens": len(tokens)}, sys.stdout)
