"""Load for the fault harness: streamed chat completions through one client's API with the real
`openai` SDK, from inside that client's network namespace.

    load.py --url http://127.0.0.1:8080/v1 --workers 4 --stop-file F --out records.jsonl

Each of --workers threads sends one streamed request after another until --stop-file exists or
--max-seconds pass (whichever first), then finishes the request it has running. One JSON line per
request: start, first content and end (unix seconds), outcome ("ok" or an error kind), content
chunks received and the usage the stream reported. Prompts are fixed text; nothing is logged.
"""

import argparse
import json
import os
import threading
import time

import openai

PROMPT = "Count to thirty."  # harness.py's billing check counts it


def error_kind(error: Exception) -> str:
    if isinstance(error, openai.APITimeoutError):
        return "timeout"
    if isinstance(error, openai.APIConnectionError):
        return "connection"
    if isinstance(error, openai.APIStatusError):
        code = ""
        body = error.body if isinstance(error.body, dict) else {}
        if isinstance(body.get("error"), dict):
            code = str(body["error"].get("code") or body["error"].get("type") or "")
        elif body.get("code"):
            code = str(body.get("code"))
        return f"http_{error.status_code}" + (f":{code}" if code else "")
    if isinstance(error, openai.APIError):
        # An error event inside a stream that had begun.
        return "stream_error"
    return type(error).__name__


def one_request(client: openai.OpenAI, model: str) -> dict:
    record = {"start": time.time(), "first": None, "end": None, "chunks": 0, "usage": None}
    try:
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            if chunk.usage is not None:
                record["usage"] = chunk.usage.total_tokens
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    if record["first"] is None:
                        record["first"] = time.time()
                    record["chunks"] += 1
        record["outcome"] = "ok" if record["usage"] is not None else "no_usage"
    except Exception as error:  # every failure is a result here, classified
        record["outcome"] = error_kind(error)
    record["end"] = time.time()
    return record


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", default="mock-model")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--request-timeout", type=float, default=40.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    deadline = time.time() + args.max_seconds
    lock = threading.Lock()
    out = open(args.out, "a", buffering=1)

    def run() -> None:
        # One SDK client (one keep-alive pool) per thread, as an app would hold one; no
        # retries in the SDK, so every failure the network causes is seen and counted.
        client = openai.OpenAI(
            base_url=args.url,
            api_key="unused",
            max_retries=0,
            timeout=args.request_timeout,
        )
        while time.time() < deadline and not os.path.exists(args.stop_file):
            record = one_request(client, args.model)
            with lock:
                out.write(json.dumps(record) + "\n")

    threads = [threading.Thread(target=run, daemon=True) for _ in range(args.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.max_seconds + args.request_timeout + 10)
    out.close()


if __name__ == "__main__":
    main()
