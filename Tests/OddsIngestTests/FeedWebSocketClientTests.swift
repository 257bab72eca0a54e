import Foundation
import IntegrationSupport
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
@testable import OddsIngest
import ServiceSupport
import SocketSupport
import Synchronization
import Testing

/// The supplier connection's WebSocket client against a raw TCP server on loopback (the real
/// supplier is covered by the pipeline tests): what it does when the upgrade is refused, never
/// answered, or the URL is not a WebSocket one.
@Suite("Feed WebSocket client (raw TCP server)")
struct FeedWebSocketClientTests {
    private static let logger = Logger(label: "feed-websocket-client-test")

    @Test("a refused upgrade (HTTP 400) is an error naming the URL, not a connection")
    func refusedUpgrade() async throws {
        let server = try #require(OneConnectionServer { fd in
            OneConnectionServer.write(fd, "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        })
        let url = "ws://127.0.0.1:\(server.port)/ws?after=1:2"
        let handled = Atomic<Bool>(false)
        let outcome = await Result {
            try await Deadline.run("the refused upgrade", timeout: .seconds(20)) {
                try await FeedWebSocketClient.connect(url: url, maxFrameSize: 1 << 16, logger: Self.logger) { _, _, _ in
                    handled.store(true, ordering: .relaxed)
                }
            }
        }
        let refused = try #require(outcome.failure as? FeedWebSocketClient.Refused, "outcome: \(outcome)")
        #expect(refused.description.contains(url))
        let ranHandler = handled.load(ordering: .relaxed)
        #expect(!ranHandler, "the handler ran on a refused connection")
        #expect(server.request().hasPrefix("GET /ws?after=1:2 HTTP/1.1"), "request: \(server.request())")
    }

    @Test("an attempt cancelled while the upgrade is unanswered closes its connection at once")
    func cancelledBeforeTheAnswerCloses() async throws {
        // Reads the request, then waits (at most 20 s) for the client to close.
        let server = try #require(OneConnectionServer { fd in
            OneConnectionServer.waitForEOF(fd, timeout: 20)
        })
        let attempt = Attempt(url: "ws://127.0.0.1:\(server.port)/ws")
        let asked = try await TestInfrastructure.waitUntil(timeout: .seconds(20)) { !server.request().isEmpty }
        #expect(asked, "the client sent no upgrade request within 20 s")
        attempt.task.cancel()
        let closed = try await TestInfrastructure.waitUntil(timeout: .seconds(20)) { server.sawEOF }
        #expect(closed, "the server saw no close within 20 s of the cancel")
        let ended = try await TestInfrastructure.waitUntil(timeout: .seconds(20)) { attempt.ended }
        #expect(ended, "the cancelled attempt had not ended 20 s later")
    }

    @Test("a server that closes before answering the upgrade ends the attempt with an error")
    func closedBeforeTheAnswer() async throws {
        let server = try #require(OneConnectionServer { _ in })  // reads the request, then closes
        let attempt = Attempt(url: "ws://127.0.0.1:\(server.port)/ws")
        let ended = try await TestInfrastructure.waitUntil(timeout: .seconds(20)) { attempt.ended }
        #expect(ended, "the attempt was still waiting 20 s after the server closed")
        if ended { #expect(await attempt.task.result.failure != nil) }
    }

    @Test("a URL that is not ws:// or wss:// with a host is refused before connecting")
    func badURL() async throws {
        for url in ["http://127.0.0.1:1/ws", "ws:///ws", "not a url"] {
            let outcome = await Result {
                try await FeedWebSocketClient.connect(url: url, maxFrameSize: 1 << 16, logger: Self.logger) { _, _, _ in }
            }
            #expect(outcome.failure is FeedWebSocketClient.BadURL, "\(url): \(outcome)")
        }
    }
}

private extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

private extension Result where Failure == any Error {
    init(_ body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

/// One connection attempt in a task, with a flag for when it ended (waited for with a bound).
private final class Attempt: Sendable {
    let task: Task<Void, any Error>
    private let done: Done

    private final class Done: Sendable {
        let flag = Atomic<Bool>(false)
    }

    init(url: String) {
        let done = Done()
        self.done = done
        task = Task {
            defer { done.flag.store(true, ordering: .releasing) }
            _ = try await FeedWebSocketClient.connect(url: url, maxFrameSize: 1 << 16, logger: Logger(label: "feed-websocket-client-test")) { _, _, _ in }
        }
    }

    var ended: Bool { done.flag.load(ordering: .acquiring) }
}

/// Accepts one connection on its own thread, reads the HTTP request head, then runs `answer`.
private final class OneConnectionServer: Sendable {
    let port: Int
    private final class Record: Sendable {
        let state = Mutex<(request: String, eof: Bool)>(("", false))
    }

    private let record = Record()

    init?(_ answer: @escaping @Sendable (Int32) -> Void) {
        guard let (listener, port) = BlockingSocket.listen() else { return nil }
        self.port = port
        let thread = Thread { [record] in
            defer { close(listener) }
            guard Self.readable(listener, timeout: 20) else { return }
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { return }
            defer { close(fd) }
            var head = [UInt8]()
            var chunk = [UInt8](repeating: 0, count: 4_096)
            while !String(decoding: head, as: UTF8.self).contains("\r\n\r\n"), Self.readable(fd, timeout: 20) {
                let count = read(fd, &chunk, chunk.count)
                guard count > 0 else { break }
                head += chunk[0..<count]
            }
            record.state.withLock { $0.request = String(decoding: head, as: UTF8.self) }
            answer(fd)
            if Self.eof(fd) { record.state.withLock { $0.eof = true } }
        }
        thread.start()
    }

    func request() -> String { record.state.withLock { $0.request } }
    var sawEOF: Bool { record.state.withLock { $0.eof } }

    static func write(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    }

    /// Waits until the peer closes (or `timeout` seconds pass).
    static func waitForEOF(_ fd: Int32, timeout: Int32) {
        _ = readable(fd, timeout: timeout)
    }

    private static func eof(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        guard readable(fd, timeout: 0) else { return false }
        return recv(fd, &byte, 1, Int32(MSG_PEEK)) == 0
    }

    private static func readable(_ fd: Int32, timeout seconds: Int32) -> Bool {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, seconds * 1_000) == 1
    }
}

@Suite("Feed messages out of WebSocket frames (pure logic)")
struct FeedMessageAssemblerTests {
    private func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    @Test("a whole text or binary frame is one message, its bytes as sent")
    func wholeFrames() throws {
        var assembler = FeedMessageAssembler(maxSize: 64)
        #expect(try assembler.add(.text, buffer(#"{"type":"odds"}"#), fin: true) == Array(#"{"type":"odds"}"#.utf8))
        #expect(try assembler.add(.binary, ByteBuffer(bytes: [0xFF, 0x00, 0x7B]), fin: true) == [0xFF, 0x00, 0x7B])
    }

    @Test("a fragmented message is joined in order; nothing is returned before its last part")
    func fragments() throws {
        var assembler = FeedMessageAssembler(maxSize: 64)
        #expect(try assembler.add(.text, buffer("{\"a\":"), fin: false) == nil)
        #expect(try assembler.add(.continuation, buffer("1,\"b\""), fin: false) == nil)
        #expect(try assembler.add(.continuation, buffer(":2}"), fin: true) == Array("{\"a\":1,\"b\":2}".utf8))
        // The next message starts clean.
        #expect(try assembler.add(.text, buffer("{}"), fin: true) == Array("{}".utf8))
    }

    @Test("broken framing and oversize messages are errors, named")
    func failures() {
        var assembler = FeedMessageAssembler(maxSize: 8)
        #expect(throws: FeedMessageAssembler.Failure.continuationWithoutStart) { try assembler.add(.continuation, buffer("x"), fin: true) }
        #expect(throws: FeedMessageAssembler.Failure.tooLarge(limit: 8)) { try assembler.add(.text, buffer("123456789"), fin: true) }
        var joined = FeedMessageAssembler(maxSize: 8)
        #expect(throws: Never.self) { _ = try joined.add(.text, buffer("12345"), fin: false) }
        #expect(throws: FeedMessageAssembler.Failure.tooLarge(limit: 8)) { try joined.add(.continuation, buffer("6789"), fin: true) }
        var interleaved = FeedMessageAssembler(maxSize: 8)
        #expect(throws: Never.self) { _ = try interleaved.add(.text, buffer("12"), fin: false) }
        #expect(throws: FeedMessageAssembler.Failure.startInsideMessage) { try interleaved.add(.text, buffer("34"), fin: true) }
        #expect(FeedMessageAssembler.Failure.tooLarge(limit: 8).description == "a message over 8 bytes")
    }
}
