import Contracts
import Hummingbird
import Synchronization

/// The last encoded JSON answer per key, held with the value it encodes. An answer equal to the
/// held one is served from the held bytes: on a hot read, encoding is most of the CPU, while
/// building the answer and comparing it costs little. Equality is checked on the whole value
/// (prices, versions, effective status, teams), so a held body is always exactly what encoding
/// the new answer would give; the read itself still goes to Redis every time.
final class EncodedAnswerCache<Answer: Encodable & Equatable & Sendable>: Sendable {
    private struct Entry: Sendable {
        let answer: Answer
        let body: ByteBuffer
    }

    private let entries = Mutex<[String: Entry]>([:])
    private let capacity: Int

    init(capacity: Int) {
        precondition(capacity > 0, "capacity must be positive")
        self.capacity = capacity
    }

    /// A 200 response with `answer` as JSON.
    func response(key: String, answer: Answer) -> Response {
        JSONResponse.make(body: body(key: key, answer: answer))
    }

    func body(key: String, answer: Answer) -> ByteBuffer {
        let held = entries.withLock { entries -> ByteBuffer? in
            guard let entry = entries[key], entry.answer == answer else { return nil }
            return entry.body
        }
        if let held { return held }
        let body = JSONResponse.encode(answer)
        entries.withLock { entries in
            // Bounded: start over when full (a miss only costs one encoding).
            if entries.count >= capacity, entries[key] == nil { entries.removeAll(keepingCapacity: true) }
            entries[key] = Entry(answer: answer, body: body)
        }
        return body
    }

    var count: Int { entries.withLock { $0.count } }
}
