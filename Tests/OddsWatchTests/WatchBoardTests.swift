import Contracts
import Foundation
import Testing
@testable import OddsWatch

@Suite("odds-watch board")
struct WatchBoardTests {
    func update(_ version: Int64, home: Double, market: String = "1x2", event: String = "MATCH_001") -> OddsUpdate {
        OddsUpdate(eventId: event, homeTeam: "Flamengo", awayTeam: "Palmeiras", market: market,
                   odds: ["home": home, "draw": 3.3, "away": 3.6],
                   updatedAt: Timestamp(millisecondsSinceEpoch: 1_764_000_000_000), source: "test", version: version)
    }

    @Test("older or equal versions never replace what is shown")
    func versionGuard() {
        var board = WatchBoard()
        let now = Date()
        let first = board.apply(update(5, home: 2.1), receivedAt: now, isDelta: true)
        let older = board.apply(update(4, home: 9.9), receivedAt: now, isDelta: true)
        let same = board.apply(update(5, home: 9.9), receivedAt: now, isDelta: true)
        #expect(first)
        #expect(!older)
        #expect(!same)
        #expect(board.rows.values.first?.update.odds["home"] == 2.1)
        #expect(board.staleIgnored == 2)
        #expect(board.framesReceived == 3)
    }

    @Test("price moves are tracked per selection and resume versions per event")
    func movesAndVersions() {
        var board = WatchBoard()
        let now = Date()
        board.apply(update(1, home: 2.0), receivedAt: now, isDelta: false)
        board.apply(update(2, home: 2.2), receivedAt: now, isDelta: true)
        board.apply(update(7, home: 1.9, market: "ou_2_5"), receivedAt: now, isDelta: true)
        board.apply(update(3, home: 1.5, event: "MATCH_002"), receivedAt: now, isDelta: true)
        let row = board.rows[MarketKey(eventId: "MATCH_001", market: "1x2")]
        #expect(row?.moves["home"] == .up)
        #expect(row?.moves["draw"] == .same)
        #expect(board.versions(of: "MATCH_001") == ["1x2": 2, "ou_2_5": 7])
        #expect(board.versions(of: "MATCH_009").isEmpty)
    }

    @Test("the rendered table lists every market in order, without colour codes when asked")
    func render() {
        var board = WatchBoard()
        let now = Date()
        board.apply(update(2, home: 2.25, market: "ou_2_5"), receivedAt: now, isDelta: true)
        board.apply(update(1, home: 2.5), receivedAt: now, isDelta: true)
        let text = board.render(now: now, colour: false, title: "t")
        #expect(!text.contains("\u{1B}["))
        let lines = text.split(separator: "\n")
        let first = lines.firstIndex { $0.contains("1x2") }
        let second = lines.firstIndex { $0.contains("ou_2_5") }
        #expect(first != nil && second != nil && first! < second!)
        #expect(text.contains("home 2.50"))
        #expect(text.contains("Flamengo v Palmeiras"))
    }

    @Test("a feed outage shows every market of the event suspended with the reason, until it reopens")
    func feedSuspension() {
        var board = WatchBoard()
        let now = Date()
        let since = Timestamp(millisecondsSinceEpoch: 1_764_000_062_345)  // 2025-11-24T16:01:02.345Z
        board.apply(.snapshot(eventId: "MATCH_001", markets: [update(1, home: 2.5), update(1, home: 2.0, market: "ou_2_5")]),
                    receivedAt: now)
        board.apply(.snapshot(eventId: "MATCH_002", markets: [update(1, home: 1.5, event: "MATCH_002")]), receivedAt: now)
        #expect(!board.render(now: now, colour: false, title: "t").contains("SUSPENDED"))

        board.apply(.status(eventId: "MATCH_001", status: .suspended(since: since)), receivedAt: now)
        let text = board.render(now: now, colour: false, title: "t")
        let suspendedLines = text.split(separator: "\n").filter { $0.contains("SUSPENDED (feed down since 16:01:02)") }
        #expect(suspendedLines.count == 2)
        #expect(suspendedLines.allSatisfy { $0.contains("MATCH_001") })

        board.apply(.status(eventId: "MATCH_001", status: .open(since: since)), receivedAt: now)
        #expect(!board.render(now: now, colour: false, title: "t").contains("SUSPENDED"))

        // A snapshot taken during the outage says so itself.
        board.apply(.snapshot(eventId: "MATCH_002", markets: [], status: .suspended(since: since)), receivedAt: now)
        #expect(board.render(now: now, colour: false, title: "t").contains("SUSPENDED (feed down since 16:01:02)"))
        #expect(OddsWatchCommand.statusLine(.open(since: since)) == "OPEN again (since 16:01:02)")
    }

    @Test("a supplier suspension shows without a feed reason")
    func supplierSuspension() {
        var suspended = update(1, home: 2.5)
        suspended.status = .suspended
        #expect(WatchBoard.statusText(suspended, platform: nil) == "SUSPENDED")
        #expect(WatchBoard.statusText(update(1, home: 2.5), platform: nil) == nil)
    }

    @Test("a resuming subscribe carries the versions already shown")
    func subscribeFrame() throws {
        let frame = OddsWatchCommand.subscribeFrame(eventId: "MATCH_001", versions: ["1x2": 4])
        let parsed = ClientMessage.parse(Array(frame.utf8))
        guard case .success(let message) = parsed else {
            Issue.record("subscribe frame rejected: \(parsed)")
            return
        }
        #expect("\(message)".contains("MATCH_001"))
        #expect(frame == #"{"eventId":"MATCH_001","type":"subscribe","versions":{"1x2":4}}"#)
    }
}
