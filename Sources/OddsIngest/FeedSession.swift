import Contracts

/// The rules of one odds-feed/2 connection as ingest reads it, without I/O: hello first, then
/// the replay or snapshot it announced, then stream frames with consecutive seqs. Anything else
/// is a protocol violation, and ingest reconnects (resuming after the last frame it read).
struct FeedSession: Sendable {
    struct Violation: Error, Sendable, Equatable, CustomStringConvertible {
        let description: String
    }

    /// What a frame means for the publisher.
    enum Step: Sendable, Equatable {
        case hello(FeedHello)
        /// A stream frame to publish; `replayed` when it was sent before the live ones.
        case stream(FeedPosition, payload: [UInt8], replayed: Bool)
        case snapshotStart(FeedPosition, markets: Int)
        /// One market of a snapshot, to publish.
        case snapshotMarket(FeedPosition, payload: [UInt8])
        /// Everything up to `position` is now covered by the snapshot just read.
        case snapshotComplete(FeedPosition)
        /// The supplier is there and has sent everything up to `position`.
        case alive(FeedPosition)
    }

    private enum Phase: Sendable, Equatable {
        case awaitingHello
        case awaitingSnapshotStart(FeedPosition)
        case snapshot(FeedPosition, markets: Int, nextIndex: Int)
        case streaming(epoch: UInt64, nextSeq: UInt64)
    }

    let requested: FeedStart
    private var phase = Phase.awaitingHello
    /// Stream frames up to this seq are replayed (sent before the live ones).
    private var replayThrough: UInt64 = 0
    /// Frames since the last stream frame that could not be read (each used a seq).
    private var unreadable: UInt64 = 0

    init(requested: FeedStart) {
        self.requested = requested
    }

    /// A frame whose envelope could not be read (it goes to the DLQ): it used one seq, so the
    /// next stream frame may skip one.
    mutating func noteUnreadable() {
        // Only stream frames use seqs: before the live part an unreadable frame is just that
        // (and the frame expected next, hello or snapshot, will not match).
        if case .streaming = phase { unreadable += 1 }
    }

    mutating func accept(_ frame: FeedFrame) throws(Violation) -> Step {
        switch (phase, frame) {
        case (.awaitingHello, .hello(let hello)):
            try check(hello)
            switch hello.recovery {
            case .replay:
                replayThrough = hello.position.seq
                phase = .streaming(epoch: hello.position.epoch, nextSeq: (hello.after?.seq ?? hello.position.seq) + 1)
            case .live:
                phase = .streaming(epoch: hello.position.epoch, nextSeq: hello.position.seq + 1)
            case .snapshot:
                phase = .awaitingSnapshotStart(hello.position)
            }
            return .hello(hello)
        case (.awaitingHello, _):
            throw Violation(description: "the first frame must be a hello")

        case (.awaitingSnapshotStart(let position), .snapshotStart(let announced, let markets)) where announced == position:
            phase = .snapshot(position, markets: markets, nextIndex: 1)
            return .snapshotStart(position, markets: markets)

        case (.snapshot(let position, let markets, let next), .snapshot(let at, let index, let count, let payload)):
            guard at == position, count == markets, index == next else {
                throw Violation(description: "expected snapshot frame \(next) of \(markets) at \(position), got \(index) of \(count) at \(at)")
            }
            phase = .snapshot(position, markets: markets, nextIndex: next + 1)
            return .snapshotMarket(position, payload: payload)
        case (.snapshot(let position, let markets, let next), .snapshotComplete(let at, let count)):
            guard at == position, count == markets, next == markets + 1 else {
                throw Violation(description: "snapshot at \(position) completed after \(next - 1) of \(markets) markets")
            }
            phase = .streaming(epoch: position.epoch, nextSeq: position.seq + 1)
            unreadable = 0
            return .snapshotComplete(position)

        case (.streaming(let epoch, let nextSeq), .odds(let position, let payload)):
            guard position.epoch == epoch, position.seq >= nextSeq, position.seq <= nextSeq + unreadable else {
                throw Violation(description: "expected stream frame \(epoch):\(nextSeq), got \(position)")
            }
            phase = .streaming(epoch: epoch, nextSeq: position.seq + 1)
            unreadable = 0
            return .stream(position, payload: payload, replayed: position.seq <= replayThrough)

        case (.streaming(let epoch, let nextSeq), .alive(let position)):
            // Everything up to the supplier's latest position must have arrived already.
            guard position.epoch == epoch, position.seq + 1 >= nextSeq, position.seq + 1 <= nextSeq + unreadable else {
                throw Violation(description: "alive at \(position) while the next stream frame expected is \(epoch):\(nextSeq)")
            }
            return .alive(position)

        default:
            throw Violation(description: "unexpected \(Self.name(of: frame)) frame")
        }
    }

    /// The hello must answer what was asked.
    private func check(_ hello: FeedHello) throws(Violation) {
        switch (requested, hello.recovery) {
        case (.after(let asked), .replay):
            guard hello.after == asked, asked.epoch == hello.position.epoch, asked.seq <= hello.position.seq else {
                throw Violation(description: "asked to resume after \(asked), the supplier replays after \(hello.after.map { "\($0)" } ?? "nothing") up to \(hello.position)")
            }
        case (.after, .snapshot), (.snapshot, .snapshot), (.live, .live):
            break
        default:
            throw Violation(description: "asked for \(requested), the supplier answered \(hello.recovery.rawValue)")
        }
    }

    private static func name(of frame: FeedFrame) -> String {
        switch frame {
        case .hello: "hello"
        case .odds: "odds"
        case .snapshotStart: "snapshot_start"
        case .snapshot: "snapshot"
        case .snapshotComplete: "snapshot_complete"
        case .alive: "alive"
        }
    }
}
