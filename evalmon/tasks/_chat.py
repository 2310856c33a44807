"""Chat-template mode for multiple-choice tasks: lm-eval 0.4.13's ``apply_chat_template=True``.

The task builds the conversation; the backend renders it with its tokenizer's chat template
(``LLRequest.messages``, evalmon.backends.hf.chat) — tasks never see a tokenizer. lm-eval's
``ConfigurableTask.fewshot_context`` + ``build_qa_turn`` + ``construct_requests``, for a task without
``gen_prefix`` (none of MMLU, HellaSwag, TruthfulQA MC, medqa, medmcqa, pubmedqa has one):

- ``system``: the description (MMLU's "The following are multiple choice questions … about X.\\n\\n",
  trailing blank line included); no system turn when the description is empty;
- ``fewshot_as_multiturn: true`` (lm-eval's default with a chat template): one ``user`` turn per shot
  (its query) and one ``assistant`` turn (its gold choice), then the document's query as the last ``user``
  turn; ``false``: one ``user`` turn holding the plain few-shot text
  ``Σ(query + " " + answer + "\\n\\n") + query`` (``multiturn_to_singleturn``);
- rendered with ``add_generation_prompt=True`` (the assistant header ends the context);
- one request per choice with **no** target delimiter: continuation = the choice itself ("A", not " A");
  the context's trailing whitespace (e.g. the newline after the assistant header) moves into the
  continuation as in every lm-eval loglikelihood request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evalmon.core.lm import LLRequest
from evalmon.tasks._options import chat_options
from evalmon.tasks.base import FEWSHOT_DELIMITER, TARGET_DELIMITER, MCDoc, MultipleChoiceTask, TaskOptions

CHAT_TARGET_DELIMITER = ""


@dataclass
class ChatMultipleChoiceTask(MultipleChoiceTask):
    """A :class:`MultipleChoiceTask` whose requests carry chat messages instead of a context string."""

    fewshot_as_multiturn: bool = True

    def messages(self, doc: MCDoc) -> tuple[tuple[str, str], ...]:
        turns: list[tuple[str, str]] = [("system", self.description)] if self.description else []
        shots = list(self.fewshot)[: self.num_fewshot]
        if self.fewshot_as_multiturn:
            for shot in shots:
                turns += [("user", shot.query), ("assistant", shot.choices[shot.gold])]
            turns.append(("user", doc.query))
        else:
            turns.append(("user", "".join(s.query + TARGET_DELIMITER + s.choices[s.gold] + FEWSHOT_DELIMITER
                                          for s in shots) + doc.query))
        return tuple(turns)

    def requests(self, doc: MCDoc) -> list[LLRequest]:
        messages = self.messages(doc)
        return [LLRequest("", CHAT_TARGET_DELIMITER + c, messages=messages) for c in doc.choices]

    def config(self) -> dict[str, Any]:
        return {**super().config(), "chat_template": True, "fewshot_as_multiturn": self.fewshot_as_multiturn,
                "target_delimiter": CHAT_TARGET_DELIMITER}


def multiple_choice(options: TaskOptions, **fields: Any) -> MultipleChoiceTask:
    """The family's :class:`MultipleChoiceTask`, or its chat-template variant when the suite's task options say
    ``chat_template: true`` (any other option key is an error naming the known ones)."""
    chat, multiturn = chat_options(fields["name"], options)
    if chat:
        return ChatMultipleChoiceTask(**fields, fewshot_as_multiturn=multiturn)
    return MultipleChoiceTask(**fields)
