import Synchronization
import Testing
@testable import ServiceSupport

/// `Deadline.untilStarted(idle:)`: after its `Started`, the work runs as long as it keeps
/// touching the watch, and fails with `Deadline.Idle` once it stops (what ingest does with a
/// supplier that is connected but silent, e.g. frozen by SIGSTOP).
@Suite("Deadline idle watch", .serialized, .timeLimit(.minutes(1)))
struct DeadlineIdleTests {
    enum Outcome: Sendable, Equatable {
        case value(Int)
        case idle(what: String, limit: Duration)
        case exceeded(what: String)
        case other(String)
    }

    /// Runs `untilStarted` and turns its result into an `Outcome`; waits at most `bound` (named
    /// `what` in the failure) without relying on the mechanism under test.
    static func outcome(
        _ what: String, bound: Duration = .seconds(20), timeout: Duration = .seconds(10), idle: ActivityWatch?,
        _ body: @escaping @Sendable (Deadline.Started) async throws -> Int
    ) async throws -> Outcome {
        let run = Task { () -> Outcome in
            do {
                return .value(try await Deadline.untilStarted("the work", timeout: timeout, idle: idle, body))
            } catch let error as Deadline.Idle {
                return .idle(what: error.what, limit: error.limit)
            } catch let error as Deadline.Exceeded {
                return .exceeded(what: error.what)
            } catch {
                return .other("\(error)")
            }
        }
        let race = FirstOf<Outcome>()
        Task { race.resolve(await run.value) }
        let timer = Task {
            try? await Task.sleep(for: bound)
            race.resolve(nil)
        }
        defer { timer.cancel() }
        guard let outcome = await race.value() else {
            run.cancel()
            throw BoundExceeded(description: "waited \(bound) for \(what), in vain")
        }
        return outcome
    }

    @Test("a watch that is not touched after Started fails the work with Idle, naming what and the limit")
    func untouchedWatchThrowsIdle() async throws {
        let watch = ActivityWatch("the supplier", limit: .milliseconds(200))
        let cancelled = Flag()
        let outcome = try await Self.outcome("an idle watch to end the work", idle: watch) { started in
            started()
            do {
                try await Task.sleep(for: .seconds(60))
            } catch {
                cancelled.set()
            }
            return 1
        }
        #expect(outcome == .idle(what: "the supplier", limit: .milliseconds(200)))
        #expect(Deadline.Idle(what: "the supplier", limit: .milliseconds(200)).description == "nothing from the supplier for 0.2 seconds")
        // The work was cancelled.
        let sawCancellation = try await TestWait.until("the idle work to see its cancellation") { cancelled.isSet }
        #expect(sawCancellation)
    }

    @Test("a watch touched for a while and then left fails the work with Idle, after the touches")
    func watchLeftAfterTouches() async throws {
        let watch = ActivityWatch("the supplier", limit: .milliseconds(300))
        let touches = Tally()
        let outcome = try await Self.outcome("an idle watch to end the work", idle: watch) { started in
            started()
            for _ in 0..<10 {
                try await Task.sleep(for: .milliseconds(20))
                watch.touch()
                touches.increment()
            }
            try await Task.sleep(for: .seconds(60))
            return 1
        }
        #expect(outcome == .idle(what: "the supplier", limit: .milliseconds(300)))
        #expect(touches.value == 10, "Idle came before the touches were over")
    }

    @Test("Idle is thrown even when the work ignores cancellation")
    func idleDoesNotWaitForTheWork() async throws {
        let watch = ActivityWatch("the supplier", limit: .milliseconds(200))
        let parked = Parked()
        let outcome = try await Self.outcome("an idle watch to end work that ignores cancellation", idle: watch) { started in
            started()
            await parked.park()  // ignores cancellation: only `release` ends it
            return 1
        }
        #expect(outcome == .idle(what: "the supplier", limit: .milliseconds(200)))
        parked.release()
    }

    @Test("a watch that keeps being touched never fails the work, for many times its limit")
    func touchedWatchNeverIdles() async throws {
        // A touch every 10 ms against a 2 s limit (wide, for a busy machine), for 5 s.
        let watch = ActivityWatch("the supplier", limit: .seconds(2))
        let outcome = try await Self.outcome("the touched work to finish", idle: watch) { started in
            started()
            let end = ContinuousClock.now + .seconds(5)
            var touches = 0
            while ContinuousClock.now < end {
                watch.touch()
                touches += 1
                try await Task.sleep(for: .milliseconds(10))
            }
            return touches
        }
        guard case .value(let touches) = outcome else {
            Issue.record("the touched work did not finish: \(outcome)")
            return
        }
        #expect(touches > 0)
    }

    @Test("idleness counts from Started: a handshake longer than the idle limit is not idle")
    func idleCountsFromStarted() async throws {
        let watch = ActivityWatch("the supplier", limit: .seconds(2))
        let outcome = try await Self.outcome("the work to finish", timeout: .seconds(20), idle: watch) { started in
            try await Task.sleep(for: .seconds(3))  // the "handshake": nobody touches the watch
            started()
            for _ in 0..<5 {
                watch.touch()
                try await Task.sleep(for: .milliseconds(20))
            }
            return 7
        }
        #expect(outcome == .value(7))
    }

    @Test("work that never calls Started fails with Exceeded, not Idle")
    func notStartedIsExceeded() async throws {
        let watch = ActivityWatch("the supplier", limit: .milliseconds(50))
        let outcome = try await Self.outcome("the start deadline", timeout: .milliseconds(300), idle: watch) { _ in
            try await Task.sleep(for: .seconds(60))
            return 1
        }
        #expect(outcome == .exceeded(what: "the work"))
    }

    @Test("work that ends by itself returns its value and its error, idle watch or not")
    func workEndsByItself() async throws {
        let watch = ActivityWatch("the supplier", limit: .milliseconds(200))
        #expect(try await Self.outcome("the work's value", idle: watch) { started in
            started()
            return 3
        } == .value(3))
        struct Boom: Error {}
        let failed = try await Self.outcome("the work's error", idle: watch) { started in
            started()
            throw Boom()
        }
        #expect(failed == .other("Boom()"))
        // After the work ended, the watch's silence fails nothing.
        try await Task.sleep(for: .milliseconds(400))
    }

    @Test("busy time is not idle: a body busy for many times the limit is not failed, and idleness counts from the end of it")
    func busyIsNotIdle() async throws {
        let watch = ActivityWatch("the supplier", limit: .milliseconds(200))
        let busyEnded = Flag()
        let outcome = try await Self.outcome("an idle watch to end the work after its busy time", idle: watch) { started in
            started()
            // Busy (e.g. waiting for room to hand a frame on) for 5 times the limit, untouched.
            try await watch.busy {
                try await Task.sleep(for: .seconds(1))
                busyEnded.set()
            }
            try await Task.sleep(for: .seconds(60))  // then really idle
            return 1
        }
        #expect(outcome == .idle(what: "the supplier", limit: .milliseconds(200)))
        #expect(busyEnded.isSet, "Idle came while the work was busy")
    }

    @Test("busy returns the body's value and passes its error on")
    func busyPassesThrough() async throws {
        let watch = ActivityWatch("x", limit: .seconds(1))
        #expect(await watch.busy { 5 } == 5)
        struct Boom: Error {}
        await #expect(throws: Boom.self) { try await watch.busy { throw Boom() } }
        // Nested busy sections end together.
        let value = await watch.busy { await watch.busy { 6 } }
        #expect(value == 6)
    }

    @Test("a touch moves lastTouch forward")
    func touchMovesLastTouch() async throws {
        let watch = ActivityWatch("x", limit: .seconds(1))
        watch.touch()
        let first = watch.lastTouch
        try await Task.sleep(for: .milliseconds(20))
        watch.touch()
        #expect(watch.lastTouch > first)
        #expect(watch.lastTouch <= ContinuousClock.now)
    }
}

/// A bounded failure of the test's own waits.
struct BoundExceeded: Error, CustomStringConvertible {
    let description: String
}

/// Polling wait for the tests, bounded and named.
enum TestWait {
    static func until(_ what: String, timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws -> Bool {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(5))
        }
        if condition() { return true }
        Issue.record("waited \(timeout) for \(what), in vain")
        return false
    }
}

/// The first `resolve` wins; `value()` returns it.
final class FirstOf<T: Sendable>: Sendable {
    private struct State {
        var decided = false
        var result: T?
        var waiter: CheckedContinuation<T?, Never>?
    }

    private let state = Mutex(State())

    func resolve(_ result: T?) {
        let waiter: CheckedContinuation<T?, Never>? = state.withLock { state in
            guard !state.decided else { return nil }
            state.decided = true
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: result)
    }

    func value() async -> T? {
        await withCheckedContinuation { continuation in
            let early: (Bool, T?) = state.withLock { state in
                if state.decided { return (true, state.result) }
                state.waiter = continuation
                return (false, nil)
            }
            if early.0 { continuation.resume(returning: early.1) }
        }
    }
}

/// An await that ignores cancellation until `release`.
final class Parked: Sendable {
    private struct State {
        var released = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    func park() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                if state.released { return true }
                state.waiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }

    func release() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.released = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }
}

final class Flag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .releasing) }
    var isSet: Bool { flag.load(ordering: .acquiring) }
}

final class Tally: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}
