
# ---- fake OpenAI-compatible server (owner: LLM layer; tests/fakes/openai_server.py) ----
import collections.abc as _abc  # noqa: E402

import pytest as _pytest  # noqa: E402

from tests.fakes.openai_server import FakeServer as _FakeServer  # noqa: E402


@_pytest.fixture
def fake_openai() -> _abc.Iterator[_abc.Callable[..., _FakeServer]]:
    """Start fake servers: `srv = fake_openai(script, **options)`; all are closed at teardown and
    their hook failures fail the test."""
    started: list[_FakeServer] = []

    def start(script, **options) -> _FakeServer:  # type: ignore[no-untyped-def]
        srv = _FakeServer(script, **options).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.close()
    for srv in started:
        srv.check()
# ---- end fake OpenAI-compatible server ----
