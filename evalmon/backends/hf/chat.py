"""Rendering chat messages with a Hugging Face tokenizer's chat template, exactly like lm-eval 0.4.13.

lm-eval's ``HFLM.apply_chat_template`` (used for ``apply_chat_template=True``) calls
``tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True,
continue_final_message=False)``; when the template raises a ``jinja2`` ``TemplateError`` it drops the
system turns and renders again (templates that know no system role). The rendered string is then an
ordinary loglikelihood context: ``tok_encode`` adds no special tokens when it already starts with the
prefix token's text (a template that writes ``{{ bos_token }}`` itself), else the tokenizer's default
applies — :func:`chat_identity` records which of the two a model gets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from evalmon.core.errors import ModelError

Turns = Sequence[tuple[str, str]]


def template_of(tokenizer: Any) -> str | None:
    """The tokenizer's chat template (a named-template dict is hashed as a whole), or None."""
    template = getattr(tokenizer, "chat_template", None)
    return template or None


def template_hash(tokenizer: Any) -> str | None:
    template = template_of(tokenizer)
    if template is None:
        return None
    text = template if isinstance(template, str) else repr(sorted(template.items()))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def render_messages(tokenizer: Any, messages: Turns, *, model: str) -> str:
    """lm-eval's ``HFLM.apply_chat_template`` (generation prompt added; system turns dropped on a
    ``TemplateError``); a tokenizer without a chat template is a one-line ``ModelError``."""
    import jinja2

    if template_of(tokenizer) is None:
        raise ModelError(f"the task option chat_template: true needs a chat template but model {model} has none "
                         "(a base model?)", hint="use a chat/instruct checkpoint, or drop chat_template from the task")
    turns = [{"role": role, "content": content} for role, content in messages]
    kwargs = {"tokenize": False, "add_generation_prompt": True, "continue_final_message": False}
    try:
        return str(tokenizer.apply_chat_template(turns, **kwargs))
    except jinja2.exceptions.TemplateError:
        return str(tokenizer.apply_chat_template([t for t in turns if t["role"] != "system"], **kwargs))


def render_contexts(tokenizer: Any, reqs: Sequence[Any], *, model: str) -> list[str]:
    """Each request's context: its ``messages`` rendered (once per distinct conversation), else ``context``."""
    rendered: dict[tuple[tuple[str, str], ...], str] = {}
    out = []
    for r in reqs:
        if r.messages is None:
            out.append(r.context)
            continue
        if r.messages not in rendered:
            rendered[r.messages] = render_messages(tokenizer, r.messages, model=model)
        out.append(rendered[r.messages])
    return out


def chat_identity(tokenizer: Any, prefix_text: str, adds_bos: bool) -> dict[str, Any]:
    """Provenance of chat-template mode: the template's hash and where a rendered context's BOS comes from
    (``template``: the template writes it, so none is added; ``tokenizer``: the tokenizer prepends it;
    ``none``)."""
    digest = template_hash(tokenizer)
    if digest is None:
        return {"template": None}
    try:
        sample = render_messages(tokenizer, [("user", "x")], model="")
    except Exception:  # a template that refuses a lone user turn: the provenance says so, scoring decides later
        return {"template": digest, "bos": "unknown"}
    bos = "template" if prefix_text and sample.startswith(prefix_text) else "tokenizer" if adds_bos else "none"
    return {"template": digest, "bos": bos}
