"""The RESP2 reading and writing of the limiter's pipelined Redis connection (``gateway.adapters.resp``)."""

from __future__ import annotations

import pytest

from gateway.adapters.resp import RedisReplyError, _Incomplete, encode_command, parse_reply


def test_commands_are_arrays_of_bulk_strings():
    assert encode_command(b"EVALSHA", "ab", 2, "k:张") == (
        b"*4\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n2\r\n$5\r\nk:\xe5\xbc\xa0\r\n"
    )


@pytest.mark.parametrize(
    ("data", "reply"),
    [
        (b":-42\r\n", -42),
        (b"+OK\r\n", b"OK"),
        (b"$5\r\nhe\r\nl\r\n", b"he\r\nl"),  # a bulk string is read by its length, CRLF and all
        (b"$-1\r\n", None),
        (b"*2\r\n:1\r\n:0\r\n", [1, 0]),
        (b"*2\r\n*1\r\n$1\r\na\r\n*0\r\n", [[b"a"], []]),
    ],
)
def test_every_reply_kind_and_every_split_of_it(data, reply):
    assert parse_reply(data) == (reply, len(data))
    for cut in range(len(data)):  # however the bytes arrive, an incomplete reply is never taken
        with pytest.raises(_Incomplete):
            parse_reply(data[:cut])
    assert parse_reply(data + b":7\r\n") == (reply, len(data))  # and the next reply is left in place


def test_error_replies_are_values_not_exceptions_of_the_reader():
    error, end = parse_reply(b"-NOSCRIPT No matching script\r\n")
    assert isinstance(error, RedisReplyError) and str(error).startswith("NOSCRIPT") and end == 30


def test_anything_else_is_refused():
    with pytest.raises(ValueError, match="RESP2"):
        parse_reply(b"HTTP/1.1 400\r\n")
