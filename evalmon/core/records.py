"""Canonical traffic records: the column names every monitor source maps logged requests onto.

A record is one logged LLM request. Sources (``evalmon.monitor.sources``) read raw logs and normalise them
(``evalmon.monitor.schema``, pandas) to these columns; the monitor YAML (``evalmon.config.monitor``) names
them in ``columns:`` mappings, quality checks and windows. Field names are OpenTelemetry GenAI names
where one exists, with aliases for OpenInference, MLflow traces and plain logs (``ALIASES``).
Names only: this module imports nothing but ``core.errors``.
"""

from __future__ import annotations

from collections.abc import Mapping

from evalmon.core.errors import ConfigError

REQUEST_ID = "request_id"  # str, unique per request
TIMESTAMP = "timestamp"  # pandas datetime64[ns, UTC]
MODEL = "model"  # gen_ai.request.model
PROMPT = "prompt"  # str (user input; chat messages flattened)
RESPONSE = "response"  # str (model output)
CONTEXTS = "contexts"  # list[str] retrieved passages (RAG), may be empty
SAMPLES = "samples"  # list[str] extra sampled responses (self-consistency), may be empty
LATENCY_MS = "latency_ms"  # float
INPUT_TOKENS = "input_tokens"  # gen_ai.usage.input_tokens
OUTPUT_TOKENS = "output_tokens"  # gen_ai.usage.output_tokens
SESSION_ID = "session_id"  # optional conversation id
TRACE_ID = "trace_id"  # MLflow trace id when the source is MLflow traces

CANONICAL_COLUMNS = (REQUEST_ID, TIMESTAMP, MODEL, PROMPT, RESPONSE, CONTEXTS, SAMPLES, LATENCY_MS,
                     INPUT_TOKENS, OUTPUT_TOKENS, SESSION_ID, TRACE_ID)
REQUIRED_COLUMNS = (TIMESTAMP, PROMPT, RESPONSE)
# Extra column set by every Source (not a record field): the row's position in the source's arrival
# order (files in order, then line/row order). Frames are sorted by timestamp; sorting by ARRIVAL
# restores the logged order (data-quality "timestamps increasing" check). Not a signal: don't drift it.
ARRIVAL = "arrival"

# Source field names that map onto each canonical column, in coalescing order (the first present wins):
# OpenTelemetry GenAI, OpenInference, MLflow trace fields, plain names.
ALIASES: dict[str, tuple[str, ...]] = {
    REQUEST_ID: ("request_id", "gen_ai.response.id", "client_request_id", "requestId", "id",
                 "span_id", "context.span_id"),
    TIMESTAMP: ("timestamp", "@timestamp", "time", "ts", "created_at", "start_time", "startTime",
                "start_time_unix_nano", "startTimeUnixNano", "timeUnixNano", "timestamp_ms", "request_time"),
    MODEL: ("model", "gen_ai.request.model", "gen_ai.response.model", "llm.model_name", "model_name",
            "model_id"),
    PROMPT: ("prompt", "gen_ai.input.messages", "gen_ai.prompt", "input.value", "llm.input_messages",
             "request", "request_preview", "messages", "input", "inputs", "question", "query"),
    RESPONSE: ("response", "gen_ai.output.messages", "gen_ai.completion", "output.value",
               "llm.output_messages", "response_preview", "completion", "output", "outputs", "answer"),
    CONTEXTS: ("contexts", "retrieval.documents", "retrieved_contexts", "documents"),
    SAMPLES: ("samples",),
    LATENCY_MS: ("latency_ms", "execution_time_ms", "execution_duration", "duration_ms"),
    INPUT_TOKENS: ("input_tokens", "gen_ai.usage.input_tokens", "llm.token_count.prompt",
                   "gen_ai.usage.prompt_tokens", "usage.prompt_tokens", "prompt_tokens"),
    OUTPUT_TOKENS: ("output_tokens", "gen_ai.usage.output_tokens", "llm.token_count.completion",
                    "gen_ai.usage.completion_tokens", "usage.completion_tokens", "completion_tokens"),
    SESSION_ID: ("session_id", "session.id", "gen_ai.conversation.id", "conversation_id"),
    TRACE_ID: ("trace_id", "context.trace_id", "traceId"),
}

# Optional record fields: carried only when a source logs them (never required, not in CANONICAL_COLUMNS).
# TOKEN_LOGPROBS: the serving model's log-prob of each response token — a list of floats, OpenAI's
# ``logprobs.content`` (a list of {token, logprob, …}) or either as a JSON string.
TOKEN_LOGPROBS = "token_logprobs"
OPTIONAL_ALIASES: dict[str, tuple[str, ...]] = {
    TOKEN_LOGPROBS: ("token_logprobs", "logprobs.content", "choices.0.logprobs.content", "logprobs",
                     "gen_ai.response.token_logprobs", "llm.output_token_logprobs", "response_logprobs"),
}


def check_mapping(mapping: Mapping[str, str]) -> None:
    """A ``columns: {canonical: source_column}`` mapping names canonical columns only (else ``ConfigError``)."""
    unknown = sorted(set(mapping) - set(CANONICAL_COLUMNS))
    if unknown:
        raise ConfigError(f"columns: unknown canonical field(s) {', '.join(unknown)}",
                          hint=f"map one of {', '.join(CANONICAL_COLUMNS)}")
