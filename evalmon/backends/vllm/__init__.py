"""``backend: vllm``: vLLM's offline LLM in-process (config, pure request mapping, the LM, registration)."""
