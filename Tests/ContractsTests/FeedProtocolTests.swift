import Foundation
import Testing
import Contracts

/// odds-feed/2 as Contracts reads and writes it: positions, start requests, frames (every file in
/// contracts/examples/feed), and the encoder's output read back by the parser.
@Suite struct FeedProtocolTests {
    static let feedExamples: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("contracts/examples/feed")

    static func files(_ folder: String) -> [String] {
        let url = feedExamples.appendingPathComponent(folder)
        return ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? [])
            .filter { $0.hasSuffix(".json") }.sorted()
    }

    static func parse(_ text: String) throws(FeedFrame.Invalid) -> FeedFrame {
        try FeedFrame.parse(Array(text.utf8))
    }

    static let epoch: UInt64 = 1_795_341_492_345_678

    // MARK: FeedPosition

    @Test(arguments: [
        ("1:0", FeedPosition(epoch: 1, seq: 0)),
        ("1795341492345678:42000", FeedPosition(epoch: 1_795_341_492_345_678, seq: 42_000)),
        ("18446744073709551615:18446744073709551615", FeedPosition(epoch: .max, seq: .max)),
    ])
    func positionReadsDecimalPairs(text: String, expected: FeedPosition) {
        #expect(FeedPosition(text: text) == expected)
        #expect(FeedPosition(text: Substring(text)) == expected)
        #expect(expected.description == text)
    }

    @Test(arguments: [
        "", ":", "1", "1:", ":1", "0:5", "1:2:3", "-1:2", "1:-2", "+1:2", " 1:2", "1:2 ", "1:2\n", "1 :2",
        "1.0:2", "1:2.0", "1e3:2", "0x1:2", "a:b", "1;2", "1,2", "\u{FF11}:2", "18446744073709551616:1",
        "1:18446744073709551616", "123456789012345678901:1",
    ])
    func positionRejects(text: String) {
        #expect(FeedPosition(text: text) == nil, "\(text.debugDescription) must not read as a position")
    }

    @Test func positionsCompareByEpochThenSeq() {
        #expect(FeedPosition(epoch: 1, seq: 100) < FeedPosition(epoch: 2, seq: 0))
        #expect(FeedPosition(epoch: 2, seq: 1) < FeedPosition(epoch: 2, seq: 2))
        #expect(!(FeedPosition(epoch: 2, seq: 2) < FeedPosition(epoch: 2, seq: 2)))
        #expect([FeedPosition(epoch: 3, seq: 1), FeedPosition(epoch: 2, seq: 9), FeedPosition(epoch: 3, seq: 0)].max()
                == FeedPosition(epoch: 3, seq: 1))
    }

    // MARK: FeedStart

    @Test func startDefaultsToSnapshot() throws {
        #expect(try FeedStart.parse(after: nil, start: nil) == .snapshot)
        #expect(try FeedStart.parse(after: nil, start: "snapshot") == .snapshot)
        #expect(try FeedStart.parse(after: nil, start: "live") == .live)
        #expect(try FeedStart.parse(after: "5:7", start: nil) == .after(FeedPosition(epoch: 5, seq: 7)))
        #expect(try FeedStart.parse(after: "5:0", start: nil) == .after(FeedPosition(epoch: 5, seq: 0)))
    }

    @Test(arguments: [
        (String?.none, String?("LIVE")), (nil, ""), (nil, "replay"), (nil, " live"),
        ("garbage", nil), ("", nil), ("0:1", nil), ("1:2:3", nil), ("1:", nil),
        ("1:2", "live"), ("1:2", "snapshot"), ("1:2", ""), ("garbage", "live"),
    ])
    func startRejects(after: String?, start: String?) {
        #expect(throws: FeedStart.Invalid.self, "after=\(after ?? "-") start=\(start ?? "-")") {
            try FeedStart.parse(after: after, start: start)
        }
    }

    @Test func startQueriesReadBack() throws {
        let starts: [FeedStart] = [.snapshot, .live, .after(FeedPosition(epoch: Self.epoch, seq: 12))]
        #expect(starts.map(\.query) == ["start=snapshot", "start=live", "after=\(Self.epoch):12"])
        for start in starts {
            let parts = start.query.split(separator: "=", maxSplits: 1).map(String.init)
            let parsed = try FeedStart.parse(after: parts[0] == FeedProtocol.afterParameter ? parts[1] : nil,
                                             start: parts[0] == FeedProtocol.startParameter ? parts[1] : nil)
            #expect(parsed == start)
            #expect(start.description == start.query)
        }
    }

    // MARK: Examples

    @Test func thereAreFeedExamples() {
        #expect(Self.files("valid").count >= 10)
        #expect(Self.files("invalid").count >= 10)
    }

    @Test(arguments: files("valid"))
    func validFeedExampleParses(name: String) throws {
        let data = try Data(contentsOf: Self.feedExamples.appendingPathComponent("valid/\(name)"))
        do {
            let frame = try FeedFrame.parse(Array(data))
            // The file's own type field names the case it parsed to.
            let type = try #require((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["type"] as? String)
            switch frame {
            case .hello: #expect(type == "hello", "\(name)")
            case .odds: #expect(type == "odds", "\(name)")
            case .snapshotStart: #expect(type == "snapshot_start", "\(name)")
            case .snapshot: #expect(type == "snapshot", "\(name)")
            case .snapshotComplete: #expect(type == "snapshot_complete", "\(name)")
            case .alive: #expect(type == "alive", "\(name)")
            }
        } catch {
            Issue.record("\(name) rejected: \(error)")
        }
    }

    @Test(arguments: files("invalid"))
    func invalidFeedExampleIsRejected(name: String) throws {
        let data = try Data(contentsOf: Self.feedExamples.appendingPathComponent("invalid/\(name)"))
        #expect(throws: FeedFrame.Invalid.self, "\(name) was accepted") {
            try FeedFrame.parse(Array(data))
        }
    }

    @Test func parsedFieldsOfExamples() throws {
        let read = { (name: String) throws -> FeedFrame in
            try FeedFrame.parse(Array(try Data(contentsOf: Self.feedExamples.appendingPathComponent("valid/\(name)"))))
        }
        guard case .hello(let hello) = try read("hello_replay.json") else { Issue.record("hello_replay is not a hello"); return }
        #expect(hello == FeedHello(position: FeedPosition(epoch: Self.epoch, seq: 42_000), recovery: .replay, reason: nil,
                                   after: FeedPosition(epoch: Self.epoch, seq: 41_990), replayLogFirstSeq: 1))
        guard case .hello(let live) = try read("hello_live_without_replay_log_first_seq.json") else { Issue.record("not a hello"); return }
        #expect(live.replayLogFirstSeq == nil)
        #expect(live.recovery == .live && live.after == nil && live.reason == nil)
        guard case .snapshot(_, let index, let markets, let payload) = try read("snapshot_first_market.json") else {
            Issue.record("snapshot_first_market is not a snapshot"); return
        }
        #expect(index == 1 && markets >= 1)
        #expect(OddsUpdateValidator.validate(payload).isSuccess, "a snapshot payload is a valid OddsUpdate")
    }

    // MARK: Encoder -> parser

    static let awkwardPayloads: [String] = [
        "",
        #"{"away_team":"Chelsea","event_id":"MATCH_001","market":"1x2"}"#,
        #"say "hi" \ and \\ twice"#,
        "line one\nline two\r\nand a tab\there",
        "\u{01}\u{08}\u{0C}\u{1F} control characters, and DEL \u{7F}",
        "Fenerbahçe – Beşiktaş, Ωμέγα, 日本語, ⚽️🏆, \u{2028}\u{2029}",
        #"{"truncated":"#,
        "ends with a backslash \\",
        "\"",
        String(repeating: "é\"\\\n", count: 2_000),
    ]

    @Test(arguments: awkwardPayloads)
    func oddsFrameRoundTrip(payload: String) throws {
        let position = FeedPosition(epoch: Self.epoch, seq: 42_001)
        let text = FeedFrameEncoder.odds(position: position, payload: payload)
        #expect(try Self.parse(text) == .odds(position: position, payload: Array(payload.utf8)))
        // The envelope is JSON any reader agrees with.
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["payload"] as? String == payload)
    }

    @Test(arguments: awkwardPayloads)
    func snapshotFrameRoundTrip(payload: String) throws {
        let position = FeedPosition(epoch: Self.epoch, seq: 0)
        let text = FeedFrameEncoder.snapshot(position: position, index: 3, markets: 3, payload: payload)
        #expect(try Self.parse(text) == .snapshot(position: position, index: 3, markets: 3, payload: Array(payload.utf8)))
    }

    @Test func snapshotBoundariesRoundTrip() throws {
        let position = FeedPosition(epoch: Self.epoch, seq: 17)
        #expect(try Self.parse(FeedFrameEncoder.snapshotStart(position: position, markets: 40)) == .snapshotStart(position: position, markets: 40))
        #expect(try Self.parse(FeedFrameEncoder.snapshotComplete(position: position, markets: 40)) == .snapshotComplete(position: position, markets: 40))
        #expect(try Self.parse(FeedFrameEncoder.snapshotStart(position: position, markets: 0)) == .snapshotStart(position: position, markets: 0))
        #expect(try Self.parse(FeedFrameEncoder.snapshotComplete(position: position, markets: 0)).position == position)
    }

    /// Every hello the protocol allows.
    static let allowedHellos: [FeedHello] = {
        let position = FeedPosition(epoch: epoch, seq: 500)
        let asked = FeedPosition(epoch: epoch, seq: 420)
        var hellos: [FeedHello] = []
        for first in [UInt64?.none, 0, 1, 77] {
            hellos.append(FeedHello(position: position, recovery: .replay, reason: nil, after: asked, replayLogFirstSeq: first))
            hellos.append(FeedHello(position: position, recovery: .live, reason: nil, after: nil, replayLogFirstSeq: first))
            hellos.append(FeedHello(position: position, recovery: .snapshot, reason: .requested, after: nil, replayLogFirstSeq: first))
            for reason in [SnapshotReason.unknownEpoch, .tooOld, .ahead] {
                hellos.append(FeedHello(position: position, recovery: .snapshot, reason: reason, after: asked, replayLogFirstSeq: first))
            }
        }
        hellos.append(FeedHello(position: FeedPosition(epoch: 1, seq: 0), recovery: .snapshot, reason: .requested, after: nil, replayLogFirstSeq: 0))
        return hellos
    }()

    @Test func helloRoundTrip() throws {
        for hello in Self.allowedHellos {
            let text = FeedFrameEncoder.hello(hello)
            #expect(try Self.parse(text) == .hello(hello), "\(text)")
            #expect(try Self.parse(text).position == hello.position)
        }
    }

    /// What the parser refuses, the encoder can still write: hellos the protocol forbids.
    @Test func forbiddenHellosAreRejected() {
        let position = FeedPosition(epoch: Self.epoch, seq: 500)
        let asked = FeedPosition(epoch: Self.epoch, seq: 420)
        let forbidden = [
            FeedHello(position: position, recovery: .replay, reason: nil, after: nil, replayLogFirstSeq: 1),
            FeedHello(position: position, recovery: .replay, reason: .tooOld, after: asked, replayLogFirstSeq: 1),
            FeedHello(position: position, recovery: .live, reason: nil, after: asked, replayLogFirstSeq: 1),
            FeedHello(position: position, recovery: .live, reason: .requested, after: nil, replayLogFirstSeq: 1),
            FeedHello(position: position, recovery: .snapshot, reason: nil, after: nil, replayLogFirstSeq: 1),
            FeedHello(position: position, recovery: .snapshot, reason: nil, after: asked, replayLogFirstSeq: 1),
            FeedHello(position: position, recovery: .snapshot, reason: .requested, after: asked, replayLogFirstSeq: 1),
            FeedHello(position: position, recovery: .snapshot, reason: .tooOld, after: nil, replayLogFirstSeq: 1),
            FeedHello(position: position, recovery: .snapshot, reason: .unknownEpoch, after: nil, replayLogFirstSeq: 1),
            FeedHello(position: position, recovery: .snapshot, reason: .ahead, after: nil, replayLogFirstSeq: 1),
        ]
        for hello in forbidden {
            let text = FeedFrameEncoder.hello(hello)
            #expect(throws: FeedFrame.Invalid.self, "\(text) was accepted") { try Self.parse(text) }
        }
    }

    @Test(arguments: [
        #"{"type":"odds","epoch":1,"seq":1,"payload":"x","extra":null}"#,
        #"{"type":"odds","epoch":1,"seq":1}"#,
        #"{"type":"odds","epoch":1,"seq":1,"payload":"x"} trailing"#,
        #"{"type":"odds","epoch":1,"seq":1.5,"payload":"x"}"#,
        #"{"type":"odds","epoch":true,"seq":1,"payload":"x"}"#,
        #"{"type":"odds","epoch":1,"seq":-1,"payload":"x"}"#,
        #"{"type":"ODDS","epoch":1,"seq":1,"payload":"x"}"#,
        #"{"type":null,"epoch":1,"seq":1,"payload":"x"}"#,
        #"{"type":"snapshot","epoch":1,"seq":1,"index":1,"markets":0,"payload":"x"}"#,
        #"{"type":"snapshot_start","epoch":1,"seq":1,"markets":2.5}"#,
        #"{"type":"hello","protocol":"odds-feed/2","epoch":1,"seq":0,"recovery":"live","replay_log_first_seq":"0"}"#,
        #"{"type":"hello","protocol":"odds-feed/2","epoch":1,"seq":0,"recovery":"snapshot","reason":null}"#,
        "",
        "null",
        "\"odds\"",
    ])
    func malformedFramesAreRejected(text: String) {
        #expect(throws: FeedFrame.Invalid.self, "\(text) was accepted") { try Self.parse(text) }
    }

    /// Like JSON Schema's "integer": any number with no fractional part.
    @Test func integralNumbersInAnyNotationAreIntegers() throws {
        for seq in ["1", "1.0", "1e0", "0.1e1"] {
            let text = #"{"type":"odds","epoch":1,"seq":\#(seq),"payload":"x"}"#
            #expect(try Self.parse(text) == .odds(position: FeedPosition(epoch: 1, seq: 1), payload: Array("x".utf8)), "seq \(seq)")
        }
    }

    @Test func keyOrderAndWhitespaceDoNotMatter() throws {
        let text = " {\n \"payload\" : \"p\\u0041\" ,\"seq\":3, \"epoch\" :2 , \"type\":\"odds\"}\n"
        #expect(try Self.parse(text) == .odds(position: FeedPosition(epoch: 2, seq: 3), payload: Array("pA".utf8)))
    }
}

private extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}
