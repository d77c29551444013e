"""The WebSocket protocol pieces of the local stack: frames, messages, close and ping, handshake checks."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from local.websocket import (
    CLOSE_INVALID_DATA,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    ConnectionClosed,
    Frame,
    FrameDecoder,
    HandshakeError,
    MessageAssembler,
    ProtocolError,
    WebSocketStream,
    accept_key,
    check_upgrade_request,
    close_payload,
    encode_frame,
    parse_http_head,
)


def decode_all(data: bytes, *, expect_masked: bool, max_payload: int = 1 << 20) -> list[Frame]:
    decoder = FrameDecoder(expect_masked=expect_masked, max_payload=max_payload)
    decoder.feed(data)
    frames = []
    while (frame := decoder.next_frame()) is not None:
        frames.append(frame)
    return frames


def read_frames(sock: socket.socket, count: int) -> list[Frame]:
    """``count`` frames a server sent, read off the raw client end of a socket pair."""
    decoder = FrameDecoder(expect_masked=False)
    frames: list[Frame] = []
    sock.settimeout(2)
    while len(frames) < count:
        frame = decoder.next_frame()
        if frame is None:
            decoder.feed(sock.recv(65536))
        else:
            frames.append(frame)
    return frames


@pytest.fixture
def pair() -> Iterator[tuple[WebSocketStream, socket.socket]]:
    """A server-side stream, and the raw socket its client writes masked frames on."""
    server_end, client_end = socket.socketpair()
    stream = WebSocketStream(server_end, is_client=False, max_message_bytes=1024)
    yield stream, client_end
    stream.close_socket()
    client_end.close()


def test_accept_key_matches_the_rfc_example() -> None:
    # Given the key of RFC 6455 section 1.3
    # When the accept value is computed
    # Then it is the one the RFC gives
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    ("size", "length_byte"), [(0, 0), (125, 125), (126, 126), (65535, 126), (65536, 127), (70000, 127)]
)
def test_masked_frames_of_every_length_encoding_decode_to_their_payload(size: int, length_byte: int) -> None:
    # Given a client frame whose payload needs a 7-, 16- or 64-bit length
    payload = bytes(i % 251 for i in range(size))
    data = encode_frame(OP_BINARY, payload, mask=True)

    # When a server decodes it
    frames = decode_all(data, expect_masked=True)

    # Then the length took the expected form and the payload is unmasked again
    assert data[1] == 0x80 | length_byte
    assert frames == [Frame(OP_BINARY, payload, fin=True)]


def test_masking_hides_the_payload_on_the_wire() -> None:
    # Given a text frame masked with a known key
    data = encode_frame(OP_TEXT, b"hello", mask=True, mask_key=b"\x01\x02\x03\x04")

    # Then the key follows the header and the payload is XORed with it
    assert data[2:6] == b"\x01\x02\x03\x04"
    assert data[6:] == bytes(b ^ k for b, k in zip(b"hello", b"\x01\x02\x03\x04\x01", strict=True))


def test_a_server_refuses_an_unmasked_client_frame() -> None:
    # Given a frame a client sent without masking it
    data = encode_frame(OP_TEXT, b"hi", mask=False)

    # When a server decodes it
    with pytest.raises(ProtocolError) as error:
        decode_all(data, expect_masked=True)

    # Then it is a protocol error (1002)
    assert error.value.close_code == CLOSE_PROTOCOL_ERROR


def test_a_client_refuses_a_masked_server_frame() -> None:
    # Given a frame that a server masked
    data = encode_frame(OP_TEXT, b"hi", mask=True)

    # When a client decodes it
    with pytest.raises(ProtocolError) as error:
        decode_all(data, expect_masked=False)

    # Then it is a protocol error (1002)
    assert error.value.close_code == CLOSE_PROTOCOL_ERROR


def test_a_frame_arriving_byte_by_byte_is_decoded_once_complete() -> None:
    # Given a 300-byte masked frame fed one byte at a time
    data = encode_frame(OP_TEXT, b"x" * 300, mask=True)
    decoder = FrameDecoder(expect_masked=True)
    seen = []

    # When each byte arrives
    for byte in data:
        decoder.feed(bytes([byte]))
        seen.append(decoder.next_frame())

    # Then nothing comes out before the last byte, and the whole frame after it
    assert seen[:-1] == [None] * (len(data) - 1)
    assert seen[-1] == Frame(OP_TEXT, b"x" * 300)


def test_fragments_are_joined_into_one_message() -> None:
    # Given a text message in three fragments
    assembler = MessageAssembler()
    frames = [
        Frame(OP_TEXT, b"he", fin=False),
        Frame(OP_CONTINUATION, b"ll", fin=False),
        Frame(OP_CONTINUATION, b"o"),
    ]

    # When they are added in order
    results = [assembler.add(frame) for frame in frames]

    # Then only the last one completes the message, which is the whole text
    assert results[:2] == [None, None]
    assert results[2] is not None
    assert results[2].text == "hello"


def test_a_continuation_without_a_first_fragment_is_a_protocol_error() -> None:
    # Given no message in progress
    assembler = MessageAssembler()

    # When a continuation frame arrives
    with pytest.raises(ProtocolError) as error:
        assembler.add(Frame(OP_CONTINUATION, b"x"))

    # Then it is refused with 1002
    assert error.value.close_code == CLOSE_PROTOCOL_ERROR


def test_fragments_over_the_size_limit_are_refused_with_1009() -> None:
    # Given a 100-byte limit and a message already 60 bytes long
    assembler = MessageAssembler(max_message_bytes=100)
    assembler.add(Frame(OP_BINARY, b"a" * 60, fin=False))

    # When a fragment takes it over the limit
    with pytest.raises(ProtocolError) as error:
        assembler.add(Frame(OP_CONTINUATION, b"b" * 41, fin=False))

    # Then the message is too big (1009)
    assert error.value.close_code == CLOSE_TOO_BIG


def test_a_frame_declaring_too_large_a_payload_is_refused_before_it_arrives() -> None:
    # Given only the header of a frame announcing 200 bytes, with a 100-byte limit
    header = encode_frame(OP_BINARY, b"z" * 200, mask=True)[:8]

    # When it is decoded
    with pytest.raises(ProtocolError) as error:
        decode_all(header, expect_masked=True, max_payload=100)

    # Then it is refused with 1009 without waiting for the payload
    assert error.value.close_code == CLOSE_TOO_BIG


def test_text_that_is_not_utf8_is_refused_with_1007() -> None:
    # Given a text frame with invalid UTF-8
    assembler = MessageAssembler()

    # When it is added
    with pytest.raises(ProtocolError) as error:
        assembler.add(Frame(OP_TEXT, b"\xff\xfe"))

    # Then it is invalid data (1007)
    assert error.value.close_code == CLOSE_INVALID_DATA


def test_control_frames_over_125_bytes_are_refused() -> None:
    # Given a ping header announcing 126 bytes
    header = bytes([0x80 | OP_PING, 0x80 | 126]) + struct.pack("!H", 126)

    # When it is decoded
    with pytest.raises(ProtocolError) as error:
        decode_all(header, expect_masked=True)

    # Then it is a protocol error (1002)
    assert error.value.close_code == CLOSE_PROTOCOL_ERROR


def test_a_stream_answers_a_ping_between_fragments_and_returns_the_whole_message(
    pair: tuple[WebSocketStream, socket.socket],
) -> None:
    # Given a client that sends a fragment, a ping, then the last fragment
    stream, client = pair
    client.sendall(
        encode_frame(OP_TEXT, b"frag", fin=False, mask=True)
        + encode_frame(OP_PING, b"are you there", mask=True)
        + encode_frame(OP_CONTINUATION, b"mented", mask=True)
    )

    # When the server reads a message
    message = stream.receive(timeout=2)

    # Then it is the joined text, and the client got a pong with the ping's payload
    assert message.text == "fragmented"
    assert read_frames(client, 1) == [Frame(OP_PONG, b"are you there")]


def test_a_stream_returns_pongs_to_its_reader(pair: tuple[WebSocketStream, socket.socket]) -> None:
    # Given a client that answers with a pong
    stream, client = pair
    client.sendall(encode_frame(OP_PONG, b"token", mask=True))

    # When the server reads
    message = stream.receive(timeout=2)

    # Then the pong comes back with its payload
    assert (message.opcode, message.data) == (OP_PONG, b"token")


def test_a_close_from_the_peer_is_answered_with_the_same_code(
    pair: tuple[WebSocketStream, socket.socket],
) -> None:
    # Given a client that closes with 1000 "bye"
    stream, client = pair
    client.sendall(encode_frame(OP_CLOSE, close_payload(1000, "bye"), mask=True))

    # When the server reads
    with pytest.raises(ConnectionClosed) as closed:
        stream.receive(timeout=2)

    # Then it reports the peer's close and answered it with a close frame carrying 1000
    assert (closed.value.code, closed.value.reason, closed.value.by_peer) == (1000, "bye", True)
    assert read_frames(client, 1) == [Frame(OP_CLOSE, close_payload(1000, "bye"))]


def test_an_oversized_message_is_closed_with_1009(pair: tuple[WebSocketStream, socket.socket]) -> None:
    # Given a stream limited to 1 KiB and a client sending 2 KiB
    stream, client = pair
    client.sendall(encode_frame(OP_BINARY, b"x" * 2048, mask=True))

    # When the server reads
    with pytest.raises(ProtocolError):
        stream.receive(timeout=2)

    # Then the client receives a close frame with 1009
    (frame,) = read_frames(client, 1)
    assert frame.opcode == OP_CLOSE
    assert struct.unpack("!H", frame.payload[:2]) == (CLOSE_TOO_BIG,)


def test_receive_times_out_when_nothing_arrives(pair: tuple[WebSocketStream, socket.socket]) -> None:
    # Given a silent client
    stream, _ = pair

    # When the server waits briefly, Then it times out
    with pytest.raises(TimeoutError):
        stream.receive(timeout=0.05)


def test_a_timeout_in_the_middle_of_a_frame_loses_nothing(
    pair: tuple[WebSocketStream, socket.socket],
) -> None:
    # Given half a frame, then a timeout
    stream, client = pair
    data = encode_frame(OP_TEXT, b"patience", mask=True)
    client.sendall(data[:5])
    with pytest.raises(TimeoutError):
        stream.receive(timeout=0.05)

    # When the rest arrives
    client.sendall(data[5:])

    # Then the message is whole
    assert stream.receive(timeout=2).text == "patience"


def upgrade_headers(**changes: str) -> bytes:
    headers = {
        "Host": "localhost",
        "Upgrade": "websocket",
        "Connection": "keep-alive, Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    } | changes
    lines = ["GET / HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items() if v)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_valid_upgrade_request_gets_its_accept_value() -> None:
    # Given an upgrade request as browsers send it (Connection lists several tokens)
    start, headers = parse_http_head(upgrade_headers())

    # When it is checked, Then the accept value is computed from its key
    assert check_upgrade_request(start[0], headers) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"Sec-WebSocket-Version": "8"}, 426),
        ({"Sec-WebSocket-Key": "short"}, 400),
        ({"Connection": "keep-alive"}, 400),
    ],
)
def test_a_bad_upgrade_request_is_refused(changes: dict[str, str], status: int) -> None:
    # Given an upgrade request with a wrong version, key or Connection header
    start, headers = parse_http_head(upgrade_headers(**changes))

    # When it is checked, Then it is refused with the matching status
    with pytest.raises(HandshakeError) as error:
        check_upgrade_request(start[0], headers)
    assert error.value.status == status


def test_parse_http_head_reads_the_start_line_and_headers() -> None:
    # Given a response head
    head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"

    # When it is parsed
    start, headers = parse_http_head(head)

    # Then the status and headers are there
    assert start == ["HTTP/1.1", "101", "Switching Protocols"]
    assert headers["upgrade"] == "websocket"
