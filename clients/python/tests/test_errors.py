"""The gateway's error answers as exceptions, whatever their headers hold."""
from gatehouse.errors import GatehouseError, from_answer

BODY = {"error": "too_many_requests", "message": "you already hold 16 waits on jobs", "waits": "user", "retry_after": 1}


def test_a_retry_after_that_is_not_plain_seconds_is_ignored_not_raised():
    # http.client reads headers as latin-1: a proxy's (or a hostile gateway's) "²" or "١" is a digit to
    # str.isdigit() that int() refuses or reads; only ASCII whole seconds count, as in the CLI.
    for header in ("\xb2", "\xb9\xb3", "\u0661", " 1e3 ", "-1", "1234567", ""):
        error = from_answer(429, dict(BODY), header)
        assert isinstance(error, GatehouseError) and error.retry_after is None, header
    assert from_answer(429, dict(BODY), " 5 ").retry_after == 5
    assert from_answer(429, dict(BODY), None).retry_after is None
