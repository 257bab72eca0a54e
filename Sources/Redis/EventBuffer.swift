import DequeModule

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Bounded single-producer/single-consumer hand-off between the subscriber's reader thread
/// (blocking) and one async consumer.
///
/// When the buffer is full, `push` blocks the reader thread until the consumer takes an event
/// (or stop is requested): the reader stops reading the socket, TCP flow control pushes back on
/// Redis, and nothing is dropped here.
final class EventBuffer<Element: Sendable>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Signalled when space frees up or stop is requested; the reader thread waits on it.
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var items: Deque<Element> = []
    private var consumer: CheckedContinuation<Element?, Never>?
    private var stopping = false
    private var finished = false
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if !canImport(Darwin)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    private func lock() { pthread_mutex_lock(mutex) }
    private func unlock() { pthread_mutex_unlock(mutex) }

    /// Producer: hands `element` to the consumer, blocking while the buffer is full.
    /// Returns false (element not delivered) only when stop was requested.
    @discardableResult
    func push(_ element: Element) -> Bool {
        lock()
        while items.count >= capacity && !stopping {
            pthread_cond_wait(condition, mutex)
        }
        if stopping {
            unlock()
            return false
        }
        if let waiting = consumer {
            consumer = nil
            unlock()
            waiting.resume(returning: element)
            return true
        }
        items.append(element)
        unlock()
        return true
    }

    /// Producer: sleeps up to `duration`, returning early (false) when stop is requested.
    @discardableResult
    func sleep(for duration: Duration) -> Bool {
        var deadline = timespec()
        #if canImport(Darwin)
        var now = timeval()
        gettimeofday(&now, nil)
        deadline.tv_sec = now.tv_sec
        deadline.tv_nsec = Int(now.tv_usec) * 1000
        #else
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        #endif
        let nanos = Int(duration.nanoseconds)
        let total = deadline.tv_nsec + nanos % 1_000_000_000
        deadline.tv_sec += nanos / 1_000_000_000 + total / 1_000_000_000
        deadline.tv_nsec = total % 1_000_000_000
        lock()
        defer { unlock() }
        while !stopping {
            if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT { break }
        }
        return !stopping
    }

    var isStopping: Bool {
        lock()
        defer { unlock() }
        return stopping
    }

    /// Wakes the producer (blocked in `push` or `sleep`) and makes further pushes fail.
    func requestStop() {
        lock()
        stopping = true
        pthread_cond_broadcast(condition)
        unlock()
    }

    /// No more elements: the consumer drains what is buffered and then gets nil.
    func finish() {
        lock()
        finished = true
        let waiting = items.isEmpty ? consumer : nil
        if waiting != nil { consumer = nil }
        unlock()
        waiting?.resume(returning: nil)
    }

    /// Consumer: the next element, or nil when finished (after draining) or when the calling task
    /// is cancelled. Only one consumer may wait at a time.
    func next() async -> Element? {
        lock()
        if let element = items.popFirst() {
            pthread_cond_signal(condition)
            unlock()
            return element
        }
        if finished || Task.isCancelled {
            unlock()
            return nil
        }
        unlock()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Element?, Never>) in
                lock()
                if let element = items.popFirst() {
                    pthread_cond_signal(condition)
                    unlock()
                    continuation.resume(returning: element)
                    return
                }
                if finished || Task.isCancelled {
                    unlock()
                    continuation.resume(returning: nil)
                    return
                }
                precondition(consumer == nil, "RedisSubscriber supports a single consumer at a time")
                consumer = continuation
                unlock()
            }
        } onCancel: {
            lock()
            let waiting = consumer
            consumer = nil
            unlock()
            waiting?.resume(returning: nil)
        }
    }

    var count: Int {
        lock()
        defer { unlock() }
        return items.count
    }
}
