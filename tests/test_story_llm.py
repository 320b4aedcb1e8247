"""The story's LLM parser against chat-completions servers on 127.0.0.1 (no language model runs), honest and hostile:
the API key goes nowhere but the endpoint, a slow or huge answer is cut off, a hostile answer is never echoed whole."""

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from namespace.cli import main
from namespace.inference.story import Character, LLMConfig, parse_with_llm
from namespace.inference.story.config import API_KEY_VARIABLE, MAX_PANELS
from namespace.inference.story.endpoint import EXCERPT_CHARS, MAX_REPLY_BYTES

CAST = [
    Character("mira", "Mira Okonkwo", photos=["unused"], pronoun="she"),
    Character("nils", "Nils Marchetti", photos=["unused"], pronoun="he"),
]
PANELS = [{"sentence": "Mira met Nils.", "prompt": "<mira> shaking hands with <nils>", "people": ["mira", "nils"]},
          {"sentence": "She smiled.", "prompt": "<mira> smiling", "people": ["mira"]}]  # fmt: skip


def completion(content: str) -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    return json.dumps({"id": "x", "object": "chat.completion", "choices": [choice]}).encode()


class Server:
    """An HTTP server on 127.0.0.1 whose answer is ``respond(handler)``; keeps every request it received."""

    def __init__(self, respond) -> None:
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                with contextlib.suppress(OSError):  # the client hung up (the point of several tests)
                    respond(self)

            do_GET = do_POST  # a client that turns a redirected POST into a GET is caught too

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def answer(body: bytes, status: int = 200, headers: dict | None = None):
    def respond(handler):
        handler.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(body)

    return respond


@pytest.fixture
def serve():
    servers = []

    def start(respond):
        servers.append(Server(respond))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(API_KEY_VARIABLE, "sk-magicnaming-test")
    return "sk-magicnaming-test"


def test_llm_parser_through_an_openai_compatible_endpoint(serve, key):
    server = serve(answer(completion("Here you go:\n```json\n" + json.dumps({"panels": PANELS}) + "\n```")))
    parsed = parse_with_llm("Mira met Nils. She smiled.", CAST, LLMConfig(server.url + "/", "tiny-chat"))
    assert [(p.sentence, p.prompt, p.people) for p in parsed] == [tuple(p.values()) for p in PANELS]
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == f"Bearer {key}"
    assert request["body"]["model"] == "tiny-chat" and request["body"]["temperature"] == 0.0
    system, user = request["body"]["messages"]
    assert system["role"] == "system" and "<label>" in system["content"]
    assert "<mira>: Mira Okonkwo (she)" in user["content"] and user["content"].endswith("Mira met Nils. She smiled.")


def test_llm_parser_errors(serve):
    bad = serve(answer(completion(json.dumps({"panels": [{"prompt": "<mira> and <zoe>", "sentence": "x"}]}))))
    with pytest.raises(ValueError, match="llm: the panels of model 'm': panels\\[0\\] names an unknown person 'zoe'"):
        parse_with_llm("Mira met Zoe.", CAST, LLMConfig(bad.url, "m"))
    prose = serve(answer(completion("I cannot help with that.")))
    with pytest.raises(ValueError, match="did not answer JSON panels"):
        parse_with_llm("Mira sat.", CAST, LLMConfig(prose.url, "m"))
    failing = serve(answer(json.dumps({"error": {"message": "model overloaded"}}).encode(), status=503))
    with pytest.raises(OSError, match=r"answered HTTP 503: 'model overloaded'"):
        parse_with_llm("Mira sat.", CAST, LLMConfig(failing.url, "m"))
    with pytest.raises(ValueError, match="storyline: expected at least one sentence"):
        parse_with_llm("  ", CAST, LLMConfig(failing.url, "m"))
    many = serve(answer(completion(json.dumps({"panels": [PANELS[1]] * (MAX_PANELS * 100)}))))
    with pytest.raises(ValueError, match=f"model 'm': panels: expected at most {MAX_PANELS} panels .*got 10000"):
        parse_with_llm("Mira sat.", CAST, LLMConfig(many.url, "m"))
    for timeout in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"llm.timeout: expected a number of seconds > 0"):
            parse_with_llm("Mira sat.", CAST, LLMConfig(failing.url, "m", timeout=timeout))
    assert len(failing.requests) == 1  # neither the empty storyline nor a bad timeout reached the endpoint


def test_the_api_key_comes_from_one_variable_a_config_cannot_repoint(serve, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv(API_KEY_VARIABLE, raising=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "openai-secret")
    server = serve(answer(completion(json.dumps({"panels": PANELS}))))
    parse_with_llm("Mira met Nils. She smiled.", CAST, LLMConfig(server.url, "m"))
    assert server.requests[-1]["auth"] is None  # no MAGICNAMING_LLM_API_KEY: no key at all, whatever else is set

    (tmp_path / "mira").mkdir()
    llm = {"base_url": server.url, "model": "m", "api_key_env": "AWS_SECRET_ACCESS_KEY"}
    mira = {"label": "mira", "name": "Mira Okonkwo", "photos": [str(tmp_path / "mira")]}
    config = {"encoder": "unused", "pipeline": "unused", "parser": "llm", "llm": llm, "storyline": "Mira sat.",
              "characters": [mira]}  # fmt: skip
    (tmp_path / "story.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit):
        main(["story", "--config", str(tmp_path / "story.yaml"), "--output", str(tmp_path / "out"),
              "--parse_only", "true"])  # fmt: skip
    assert "api_key_env" in capsys.readouterr().err  # the config is refused: it may not choose a secret to send
    monkeypatch.setenv(API_KEY_VARIABLE, "sk-secret\r\nX-Injected: 1")  # never sent, never quoted
    with pytest.raises(ValueError, match=f"{API_KEY_VARIABLE}: expected printable ASCII") as error:
        parse_with_llm("Mira sat.", CAST, LLMConfig(server.url, "m"))
    assert "sk-secret" not in str(error.value)
    assert len(server.requests) == 1 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_no_redirect_carries_the_key(serve, key, status):
    elsewhere = serve(answer(completion(json.dumps({"panels": PANELS}))))  # another origin: another port
    redirecting = serve(answer(b"", status, {"Location": elsewhere.url + "/chat/completions"}))
    with pytest.raises(OSError, match=rf"answered HTTP {status}, a redirect to '{elsewhere.url}/chat/completions'; "
                                      "redirects are not followed"):  # fmt: skip
        parse_with_llm("Mira sat.", CAST, LLMConfig(redirecting.url, "m"))
    assert redirecting.requests[0]["auth"] == f"Bearer {key}" and elsewhere.requests == []


def test_only_https_or_plain_http_to_this_machine(serve, key, tmp_path):
    (tmp_path / "v1/chat").mkdir(parents=True)
    (tmp_path / "v1/chat/completions").write_text("root:x:0:0:FILE-SECRET")
    for url in (f"file://{tmp_path}/v1", "ftp://127.0.0.1/v1", "127.0.0.1:8000/v1", "https://", "http://[::1"):
        with pytest.raises(ValueError, match=r"llm.base_url: expected an https:// URL \(or http:// to this machine"):
            parse_with_llm("Mira sat.", CAST, LLMConfig(url, "m"))
    with pytest.raises(ValueError) as error:
        parse_with_llm("Mira sat.", CAST, LLMConfig(f"file://{tmp_path}/v1", "m"))
    assert "FILE-SECRET" not in str(error.value)
    for url in ("http://example.com/v1", "http://10.0.0.1:8000/v1", "http://127.0.0.1.example.com/v1"):
        with pytest.raises(ValueError, match="would send the API key in clear text"):
            parse_with_llm("Mira sat.", CAST, LLMConfig(url, "m"))
    with pytest.raises(ValueError, match="expected no user name or password in the URL"):
        parse_with_llm("Mira sat.", CAST, LLMConfig("https://me:pw@127.0.0.1/v1", "m"))
    # plain http to this machine, by name or address, is allowed
    server = serve(answer(completion(json.dumps({"panels": PANELS}))))
    port = server.url.split(":")[2].split("/")[0]
    for url in (server.url, f"http://localhost:{port}/v1"):
        assert len(parse_with_llm("Mira met Nils. She smiled.", CAST, LLMConfig(url, "m"))) == 2


def drip(where: str):
    """Answers one byte a second: in the status line and headers, or in the body."""

    def respond(handler):
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 60\r\n\r\n"
        if where == "body":
            handler.wfile.write(head)
            head = b""
        for byte in [head[i : i + 1] for i in range(len(head))] + [b" "] * 60:
            handler.wfile.write(byte)
            handler.wfile.flush()
            time.sleep(1.0)

    return respond


@pytest.mark.parametrize("where", ["head", "body"])
def test_a_dripping_answer_is_cut_off_at_the_deadline(serve, where):
    server = serve(drip(where))
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"did not answer in full within llm.timeout = 1.5 s"):
        parse_with_llm("Mira sat.", CAST, LLMConfig(server.url, "m", timeout=1.5))
    assert time.monotonic() - start < 3.5  # the whole request, not each read: one byte a second never resets it


def test_an_oversized_answer_is_refused(serve):
    chunk = b" " * 65536

    def endless(handler):  # no Content-Length: the answer runs until the connection closes
        handler.send_response(200)
        handler.end_headers()
        for _ in range(10 * MAX_REPLY_BYTES // len(chunk)):
            handler.wfile.write(chunk)

    for respond in (endless, answer(b"", headers={"Content-Length": str(50_000_000)})):
        server = serve(respond)
        with pytest.raises(OSError, match=f"answered more than {MAX_REPLY_BYTES} bytes"):
            parse_with_llm("Mira sat.", CAST, LLMConfig(server.url, "m", timeout=30))


@pytest.mark.parametrize("status", [200, 500])
def test_a_hostile_answer_is_quoted_only_in_a_short_sanitised_excerpt(serve, status):
    body = "<html>\x1b[31m\u202e" + "SECRET-PAGE " * 1000 + "TAIL-MARKER</html>"
    server = serve(answer(body.encode(), status))
    with pytest.raises((OSError, ValueError)) as error:
        parse_with_llm("Mira sat.", CAST, LLMConfig(server.url, "m"))
    message = str(error.value)
    assert ("answered HTTP 500" if status == 500 else "did not answer JSON") in message
    assert "SECRET-PAGE" in message and "TAIL-MARKER" not in message  # the start only
    assert "\x1b" not in message and "\u202e" not in message  # no terminal escapes, no text reversal
    assert len(message) < len(server.url) + 2 * EXCERPT_CHARS + 120
    # a JSON answer that is no chat completion, and a chat completion whose content is prose, are cut short too
    for reply in (json.dumps({"data": ["SECRET-PAGE"] * 1000}).encode(), completion("SECRET-PAGE " * 1000)):
        server = serve(answer(reply))
        with pytest.raises(ValueError) as error:
            parse_with_llm("Mira sat.", CAST, LLMConfig(server.url, "m"))
        assert str(error.value).count("SECRET-PAGE") < 20, str(error.value)
