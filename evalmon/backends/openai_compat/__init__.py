"""``openai`` backend: any OpenAI-compatible HTTP server (vLLM, TGI, llama.cpp, ``transformers serve``, …).

``lm.py``: the request logic (generation, loglikelihood from echoed prompt logprobs, chat rendering, the
fingerprint); ``http.py``: the transport (httpx client, API key, retries with backoff, redaction, the worker
pool). See ``lm.py`` for what each request type sends.
"""

from evalmon.backends.openai_compat.http import MAX_DELAY_S, ApiClient, backoff_delay
from evalmon.backends.openai_compat.lm import MAX_STOPS, OpenAICompatLM

__all__ = ["MAX_DELAY_S", "MAX_STOPS", "ApiClient", "OpenAICompatLM", "backoff_delay"]
