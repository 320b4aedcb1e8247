"""The optional LLM parser: a storyline → panels through any OpenAI-compatible chat endpoint.

For users who have an endpoint (a hosted API or a local server): ``POST {base_url}/chat/completions`` with the model
from the config and the API key from the environment variable it names. The answer must be JSON panels; they are
checked like an edited panel file, so a model that invents a person fails with the same clear error. Nothing here
needs the network unless this parser is chosen.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request

from .config import Character, LLMConfig, Panel
from .panels import panels_from_yaml

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


def chat(llm: LLMConfig, messages: list[dict]) -> str:
    """One chat completion: the first choice's message content. Raises OSError (endpoint unreachable, HTTP error
    with its body) or ValueError (an answer that is not a chat completion)."""
    body = {"model": llm.model, "messages": messages, "temperature": llm.temperature}
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(llm.api_key_env) if llm.api_key_env else None
    if key:
        headers["Authorization"] = f"Bearer {key}"
    url = llm.base_url.rstrip("/") + "/chat/completions"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=llm.timeout) as response:
            answer = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace")[:500]
        raise OSError(f"llm.base_url: {url} answered HTTP {error.code}: {detail}") from error
    except urllib.error.URLError as error:
        raise OSError(f"llm.base_url: cannot reach {url} ({error.reason})") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"llm.base_url: {url} did not answer JSON ({error})") from error
    try:
        return answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as error:
        raise ValueError(f"llm.base_url: {url} did not answer a chat completion: {str(answer)[:300]}") from error


def parse_with_llm(storyline: str, characters: list[Character], llm: LLMConfig) -> list[Panel]:
    """Panels from an OpenAI-compatible chat endpoint, checked like an edited panel file.

    Raises:
        ValueError: an empty storyline, an answer without JSON panels, a panel naming an unknown person.
        OSError: the endpoint is unreachable or answers an HTTP error.
    """
    if not isinstance(storyline, str) or not re.search(r"\w", storyline):
        raise ValueError(f"storyline: expected at least one sentence, got {storyline!r}")
    if not llm.base_url or not llm.model:
        raise ValueError(f"llm: expected a base_url and a model, got {llm.base_url!r} and {llm.model!r}")
    content = chat(llm, _messages(storyline, characters))
    try:
        panels = _json_content(content)
    except json.JSONDecodeError as error:
        raise ValueError(f"llm: model {llm.model!r} did not answer JSON panels ({error}): {content[:300]!r}") from error
    return panels_from_yaml(json.dumps(panels), characters, f"llm: the panels of model {llm.model!r}")


__all__ = ["chat", "parse_with_llm"]
