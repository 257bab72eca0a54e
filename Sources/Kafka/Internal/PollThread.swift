import Atomics
import Foundation

/// A dedicated OS thread that calls `iteration` (a blocking librdkafka poll with a short
/// timeout) until asked to stop. Keeps librdkafka's event serving off the cooperative pool.
final class PollThread: Sendable {
    private let stopRequested = ManagedAtomic(false)
    private let finished = DispatchSemaphore(value: 0)

    init(name: String, iteration: @escaping @Sendable () -> Void) {
        let stopRequested = self.stopRequested
        let finished = self.finished
        let thread = Thread {
            nameCurrentThread(name)
            while !stopRequested.load(ordering: .acquiring) {
                iteration()
            }
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    func requestStop() {
        stopRequested.store(true, ordering: .releasing)
    }

    /// Blocks the calling (non-cooperative) thread until the loop has exited.
    func stopAndWait() {
        guard !stopRequested.exchange(true, ordering: .acquiringAndReleasing) else { return }
        finished.wait()
    }
}
