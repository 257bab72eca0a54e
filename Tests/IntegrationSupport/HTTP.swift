import Foundation
import SocketSupport

/// A minimal HTTP/1.1 client for tests: one request per connection (`Connection: close`), a
/// blocking socket with send and receive deadlines, run on its own thread so a slow server
/// never holds a thread of the cooperative pool. Unlike URLSession on Linux it has no shared
/// state between requests, and its only failure modes are "no answer within the deadline"
/// and "connection refused", each reported with the URL.
public enum HTTP {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static func get(_ url: String, timeout: Duration = .seconds(10)) async throws -> (status: Int, body: String) {
        try await request("GET", url, body: nil, timeout: timeout)
    }

    public static func post(_ url: String, body: String, contentType: String = "application/json",
                            timeout: Duration = .seconds(10)) async throws -> (status: Int, body: String) {
        try await request("POST", url, body: body, contentType: contentType, timeout: timeout)
    }

    /// GET that answers nil instead of throwing (readiness probes).
    public static func probe(_ url: String, timeout: Duration = .seconds(3)) async -> (status: Int, body: String)? {
        try? await get(url, timeout: timeout)
    }

    /// One answer: status, head, headers in order, body (de-chunked).
    public struct Answer: Sendable {
        public let status: Int
        public let head: String
        public let headers: [(name: String, value: String)]
        public let body: [UInt8]

        public func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    public static func request(_ method: String, _ url: String, body: String?, contentType: String = "application/json",
                               headers: [String: String] = [:], timeout: Duration) async throws -> (status: Int, body: String) {
        guard let parsed = URL(string: url), let host = parsed.host, let port = parsed.port else {
            throw Failure(description: "bad test URL \(url)")
        }
        var target = parsed.path.isEmpty ? "/" : parsed.path
        if let query = parsed.query { target += "?\(query)" }
        var head = "\(method) \(target) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Type: \(contentType)\r\nContent-Length: \(body.utf8.count)\r\n" }
        let answer = try await exchange(host: host == "localhost" ? "127.0.0.1" : host, port: port,
                                        head + "\r\n" + (body ?? ""), timeout: timeout, url: url)
        return (answer.status, answer.text)
    }

    /// Sends `raw` (a whole request, as written) and reads the answer: to its end (by
    /// Content-Length, the last chunk, or the server closing), or only its head.
    public static func exchange(host: String = "127.0.0.1", port: Int, _ raw: String, untilHeadersEnd: Bool = false,
                                timeout: Duration = .seconds(10), url: String? = nil) async throws -> Answer {
        // A HEAD answer has a Content-Length but no body.
        let headOnly = untilHeadersEnd || raw.hasPrefix("HEAD ")
        return try await exchange(host: host, port: port, raw, answers: 1, headOnly: headOnly, timeout: timeout, url: url)[0]
    }

    /// Sends `raw` (several pipelined requests on one keep-alive connection) and reads `answers`
    /// answers, in the order the server sent them. Every answer but the last needs a
    /// Content-Length (this project's server always sends one).
    public static func exchangePipelined(host: String = "127.0.0.1", port: Int, _ raw: String, answers: Int,
                                         timeout: Duration = .seconds(10)) async throws -> [Answer] {
        try await exchange(host: host, port: port, raw, answers: answers, headOnly: false, timeout: timeout, url: nil)
    }

    private static func exchange(host: String, port: Int, _ raw: String, answers: Int, headOnly: Bool,
                                 timeout: Duration, url: String?) async throws -> [Answer] {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let name = url ?? "http://\(host):\(port)"
        return try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(with: Result {
                    try exchange(host: host, port: port, request: Array(raw.utf8), answers: answers, untilHeadersEnd: headOnly,
                                 deadline: Date(timeIntervalSinceNow: seconds), url: name)
                })
            }
            thread.start()
        }
    }

    static func exchange(host: String, port: Int, request: [UInt8], answers expected: Int, untilHeadersEnd: Bool,
                         deadline: Date, url: String) throws -> [Answer] {
        let remaining = { max(0.001, deadline.timeIntervalSinceNow) }
        guard let fd = BlockingSocket.connect(host: host, port: port, configure: { setTimeouts($0, remaining()) }) else {
            throw Failure(description: "\(url): connection refused or timed out")
        }
        defer { close(fd) }
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure(description: "\(url): send failed (errno \(errno))") }
            sent += n
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            guard deadline.timeIntervalSinceNow > 0 else { throw Failure(description: "\(url): no complete answer before the deadline") }
            setTimeouts(fd, remaining())
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "\(url): no complete answer before the deadline (errno \(errno))")
            }
            response += buffer[..<n]
            if let answers = try? split(response, expected: expected, headOnly: untilHeadersEnd), answers.count == expected { break }
        }
        let answers = try split(response, expected: expected, headOnly: untilHeadersEnd, atEOF: true)
        guard answers.count == expected else {
            throw Failure(description: "\(url): connection closed after \(answers.count) of \(expected) complete answers")
        }
        return answers
    }

    /// Up to `expected` consecutive answers complete in `bytes`.
    static func split(_ bytes: [UInt8], expected: Int, headOnly: Bool, atEOF: Bool = false) throws -> [Answer] {
        var answers: [Answer] = []
        var rest = bytes[...]
        while answers.count < expected {
            let last = answers.count == expected - 1
            guard let answer = try parse(Array(rest), headOnly: headOnly, atEOF: atEOF && last) else { break }
            answers.append(answer)
            guard !last, let headEnd = rest.firstRange(of: [13, 10, 13, 10]),
                  let length = answer.header("content-length").flatMap(Int.init) else { break }
            rest = rest[(headEnd.upperBound + length)...]
        }
        return answers
    }

    /// The answer once `bytes` hold all of it (by Content-Length, chunked end, or EOF).
    static func parse(_ bytes: [UInt8], headOnly: Bool = false, atEOF: Bool = false) throws -> Answer? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let headEnd = bytes.firstRange(of: separator) else { return nil }
        let head = String(decoding: bytes[..<headEnd.lowerBound], as: UTF8.self)
        let lines = head.components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw Failure(description: "bad status line \(lines[0])")
        }
        let headers = lines.dropFirst().compactMap { line -> (name: String, value: String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        let answer = { (body: [UInt8]) in Answer(status: status, head: head, headers: headers, body: body) }
        if headOnly { return answer([]) }
        let field = { (name: String) in headers.first { $0.name.lowercased() == name }?.value }
        let body = Array(bytes[headEnd.upperBound...])
        if let length = field("content-length").flatMap(Int.init) {
            return body.count >= length ? answer(Array(body.prefix(length))) : nil
        }
        if field("transfer-encoding")?.lowercased().contains("chunked") == true {
            return try dechunk(body).map(answer)
        }
        return atEOF ? answer(body) : nil
    }

    static func dechunk(_ body: [UInt8]) throws -> [UInt8]? {
        var output: [UInt8] = []
        var index = 0
        while true {
            guard let lineEnd = body[index...].firstRange(of: [13, 10]) else { return nil }
            let sizeText = String(decoding: body[index..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else {
                throw Failure(description: "bad chunk size \(sizeText)")
            }
            let start = lineEnd.upperBound
            if size == 0 { return output }
            guard body.count >= start + size + 2 else { return nil }
            output += body[start..<start + size]
            index = start + size + 2
        }
    }

    static func setTimeouts(_ fd: Int32, _ seconds: Double) {
        var value = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }
}

extension TestInfrastructure {
    /// GET `url`; nil when nothing answers within `timeout` seconds.
    public static func httpGet(_ url: String, timeout: TimeInterval = 3) async -> (status: Int, body: String)? {
        await HTTP.probe(url, timeout: .milliseconds(Int64(timeout * 1000)))
    }
}
