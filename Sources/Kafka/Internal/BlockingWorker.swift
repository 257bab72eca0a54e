import DequeModule
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A dedicated OS thread that runs blocking librdkafka calls (consume with a timeout, sync
/// commit, flush, metadata, close) one after another, so they never occupy a thread of Swift's
/// cooperative pool. Async callers hand it a closure and suspend on a continuation.
final class BlockingWorker: Sendable {
    private let queue: JobQueue

    init(name: String) {
        let queue = JobQueue()
        self.queue = queue
        let thread = Thread {
            nameCurrentThread(name)
            queue.drain()
        }
        thread.name = name
        thread.start()
    }

    deinit {
        queue.stop()
    }

    /// Runs `body` on the worker thread and returns its result.
    func run<Result: Sendable>(_ body: @escaping @Sendable () throws -> Result) async throws -> Result {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Result, any Error>) in
            let accepted = queue.submit {
                continuation.resume(with: Swift.Result { try body() })
            }
            if !accepted {
                continuation.resume(throwing: KafkaError.state("client is shut down", context: "run blocking operation"))
            }
        }
    }

    /// Runs `body` on the worker thread and waits for it from a non-async context.
    func runAndWait(_ body: @escaping @Sendable () -> Void) {
        let done = DispatchSemaphore(value: 0)
        if queue.submit({ body(); done.signal() }) { done.wait() } else { body() }
    }

    /// Lets already submitted jobs finish, then ends the thread; later `run` calls throw.
    func stop() { queue.stop() }
}

/// Names the calling thread for the OS (top -H, perf, /proc): otherwise it keeps the name of the
/// thread that started it, often one of Swift's pool ("...default-qos"). Linux keeps 15 bytes.
func nameCurrentThread(_ name: String) {
    // pthread_setname_np is not visible to Swift here; this is what it does on Linux.
    let descriptor = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return }
    defer { close(descriptor) }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
}

/// The worker's job list; the thread holds this (not the worker) so the worker can be released.
private final class JobQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: Deque<@Sendable () -> Void> = []
    private var stopped = false

    func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopped else { return false }
        jobs.append(job)
        condition.signal()
        return true
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    func drain() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty && stopped {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }
}
