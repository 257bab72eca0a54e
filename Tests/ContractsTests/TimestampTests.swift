import Foundation
import Testing
@testable import Contracts

@Suite struct TimestampTests {
    @Test func parsesAndPrintsExactly() throws {
        for text in ["1970-01-01T00:00:00.000Z", "2026-11-22T10:15:30.123Z", "2024-02-29T23:59:59.999Z",
                     "2000-03-01T00:00:00.001Z", "1969-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"] {
            let parsed = try #require(Timestamp(rfc3339: text))
            #expect(parsed.rfc3339 == text)
        }
        #expect(Timestamp(rfc3339: "1970-01-01T00:00:01.500Z")?.millisecondsSinceEpoch == 1500)
        #expect(Timestamp(rfc3339: "1969-12-31T23:59:59.999Z")?.millisecondsSinceEpoch == -1)
    }

    @Test func agreesWithFoundation() throws {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        for millis in stride(from: Int64(0), to: 4_000_000_000_000, by: 123_456_789_017) {
            let timestamp = Timestamp(millisecondsSinceEpoch: millis)
            let date = try #require(formatter.date(from: timestamp.rfc3339))
            #expect(Int64((date.timeIntervalSince1970 * 1000).rounded()) == millis)
        }
    }

    @Test func codableUsesTheTextForm() throws {
        let timestamp = try #require(Timestamp(rfc3339: "2026-11-22T10:15:30.123Z"))
        let data = try JSONEncoder().encode([timestamp])
        #expect(String(decoding: data, as: UTF8.self) == #"["2026-11-22T10:15:30.123Z"]"#)
        #expect(try JSONDecoder().decode([Timestamp].self, from: data) == [timestamp])
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([Timestamp].self, from: Data(#"["2026-11-22"]"#.utf8)) }
    }
}
