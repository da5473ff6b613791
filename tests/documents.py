"""Document builders for tests: the terminal simulator of posray itself."""

from tooling.simulator import make_document, now_issued_at, resign, submission_of  # noqa: F401
