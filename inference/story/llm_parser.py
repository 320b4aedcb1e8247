"""The optional LLM parser: a storyline → panels through any OpenAI-compatible chat endpoint.

For users who have an endpoint (a hosted API or a local server): ``POST {base_url}/chat/completions`` with the model
from the config and the API key from ``MAGICNAMING_LLM_API_KEY`` (never from a variable a config names). The request
is guarded (``endpoint``: https or this machine only, no redirects, one deadline, a capped answer). The answer must
be JSON panels; they are checked like an edited panel file (the same caps and checks), so a model that invents a
person fails with the same clear error. Nothing here needs the network unless this parser is chosen.
"""

from __future__ import annotations

import json
import math
import os
import re

from .config import API_KEY_VARIABLE, Character, LLMConfig, Panel, raise_problems
from .endpoint import check_endpoint_url, excerpt, post_json
from .panels import panels_from_rows
from .parser import storyline_sentences

SYSTEM_PROMPT = """You turn a storyline into comic panels for an image generator.
Split the storyline into one panel per sentence (or per story beat). For each panel give:
- "sentence": the story text of the panel, as written (it is printed under the image);
- "prompt": a short visual description of the panel for a text-to-image model, at most 40 words, in which every
  character appears as its placeholder <label> (with spaces around it) and never by name or pronoun;
- "people": the labels of the characters in the panel, in the order they appear in the prompt.
Resolve every pronoun to the character it means. Use only the labels listed. Answer with JSON only, no prose:
{"panels": [{"sentence": "...", "prompt": "...", "people": ["..."]}]}"""


def _messages(storyline: str, characters: list[Character]) -> list[dict]:
    cast = "\n".join(
        f"- <{person.label}>: {person.name or person.label}" + (f" ({person.pronoun})" if person.pronoun else "")
        for person in characters
    )
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Characters:\n{cast}\n\nStoryline:\n{storyline.strip()}"},
    ]


def _json_content(content: str) -> dict:
    """The JSON object in a reply (models often wrap it in a ```json fence)."""
    fenced = re.search(r"```(?:json)?\s*(.*?)```", content, re.DOTALL)
    text = fenced.group(1) if fenced else content[content.find("{") : content.rfind("}") + 1]
    return json.loads(text)


def check_llm(llm: LLMConfig, argument: str = "llm") -> None:
    """Raises one ``ValueError`` for an endpoint the parser cannot use (no model, a URL that is not allowed, a
    timeout or temperature that is not a positive / finite number); contacts nothing."""
    problems = []
    if not isinstance(llm.model, str) or not llm.model.strip():
        problems.append(f"{argument}.model: expected the model name the endpoint serves, got {llm.model!r}")
    try:
        check_endpoint_url(llm.base_url, f"{argument}.base_url")
    except ValueError as error:
        problems.append(str(error))
    if not _finite(llm.timeout) or llm.timeout <= 0:
        problems.append(f"{argument}.timeout: expected a number of seconds > 0, got {llm.timeout!r}")
    if not _finite(llm.temperature):
        problems.append(f"{argument}.temperature: expected a finite number, got {llm.temperature!r}")
    raise_problems(problems)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _api_key() -> str | None:
    """``MAGICNAMING_LLM_API_KEY``, stripped; checked here so that no error of the HTTP layer ever quotes it."""
    key = (os.environ.get(API_KEY_VARIABLE) or "").strip()
    if key and not all(33 <= ord(c) < 127 for c in key):
        raise ValueError(f"{API_KEY_VARIABLE}: expected printable ASCII characters without spaces, got a key with "
                         "other characters (not shown)")  # fmt: skip
    return key or None


def chat(llm: LLMConfig, messages: list[dict]) -> str:
    """One chat completion: the first choice's message content, with the key of ``MAGICNAMING_LLM_API_KEY``.

    Raises:
        OSError: the endpoint is unreachable, too slow, redirects, answers an HTTP error or too much.
        ValueError: a URL that is not allowed, an answer that is not a chat completion.
    """
    check_llm(llm)
    headers = {"Accept": "application/json"}
    key = _api_key()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    url = llm.base_url.rstrip("/") + "/chat/completions"
    body = {"model": llm.model, "messages": messages, "temperature": llm.temperature}
    answer = post_json(url, body, headers, llm.timeout, "llm.base_url")
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as error:
        raise ValueError(f"llm.base_url: {url} did not answer a chat completion: {excerpt(answer)}") from error
    if not isinstance(content, str):
        raise ValueError(f"llm.base_url: {url} answered a message without text content: {excerpt(content)}")
    return content


def parse_with_llm(storyline: str, characters: list[Character], llm: LLMConfig) -> list[Panel]:
    """Panels from an OpenAI-compatible chat endpoint, checked like an edited panel file.

    Raises:
        ValueError: a storyline with no sentence or over a cap (``parser``), an endpoint not allowed, an answer
            without JSON panels, too many panels, a panel naming an unknown person.
        OSError: the endpoint is unreachable, too slow, redirects, answers an HTTP error or too much.
    """
    storyline_sentences(storyline)  # the storyline's caps, before the endpoint is asked
    check_llm(llm)
    content = chat(llm, _messages(storyline, characters))
    try:
        panels = _json_content(content)
    except (json.JSONDecodeError, RecursionError) as error:
        problem = f"did not answer JSON panels ({str(error)[:80]})"
        raise ValueError(f"llm: model {llm.model!r} {problem}: {excerpt(content)}") from error
    return panels_from_rows(panels, characters, f"llm: the panels of model {llm.model!r}")


__all__ = ["chat", "check_llm", "parse_with_llm"]
