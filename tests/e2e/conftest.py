"""Shared pytest plumbing for the end-to-end tests.

Every failing test gets the tail of the devnet log attached to its report, so
a failure shows what the `cocoon devnet` process printed at the time.
"""

import pytest

LOG_TAIL_CHARS = 20_000


def read_log_tail(path, limit: int = LOG_TAIL_CHARS) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return f"(could not read {path}: {e})"
    text = data.decode("utf-8", errors="replace")
    if len(text) > limit:
        text = f"... ({len(text) - limit} earlier characters cut) ...\n" + text[-limit:]
    return text


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    # The `devnet` fixture (test_openai_sdk.py) records its log file here.
    path = getattr(item.config, "_cocoon_devnet_log", None)
    if report.failed and path is not None:
        report.sections.append((f"cocoon devnet log ({path})", read_log_tail(path)))
