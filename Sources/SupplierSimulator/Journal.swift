import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The `--journal FILE` record: one JSON line per frame handed to the clients, so tests and
/// end-to-end checks can prove that nothing was lost. Lines are buffered in memory and written
/// by `JournalFlusher` every 100 ms, on shutdown, and inline whenever the buffer passes
/// `flushThreshold` bytes (so the buffer is bounded).
final class Journal: Sendable {
    static let flushThreshold = 4 * 1024 * 1024

    let path: String
    private let descriptor: Int32
    private let pending = Mutex<[UInt8]>([])
    /// Held across "take the buffer, write it" so concurrent flushes keep the line order.
    private let writeLock = Mutex<Bool>(false)

    struct OpenError: Error, CustomStringConvertible {
        let path: String
        let reason: String
        var description: String { "cannot open journal \(path): \(reason)" }
    }

    /// Creates or truncates `path`.
    init(path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw OpenError(path: path, reason: String(cString: strerror(errno))) }
        self.path = path
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }

    func append(_ line: String) {
        let size = pending.withLock { buffer in
            buffer.append(contentsOf: line.utf8)
            buffer.append(0x0A)
            return buffer.count
        }
        if size >= Self.flushThreshold { flush() }
    }

    /// Writes everything appended so far.
    func flush() {
        writeLock.withLock { _ in
            let bytes = pending.withLock { buffer in
                var taken: [UInt8] = []
                swap(&taken, &buffer)
                return taken
            }
            guard !bytes.isEmpty else { return }
            bytes.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let written = write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        return
                    }
                    offset += written
                }
            }
        }
    }
}

/// Flushes the journal every 100 ms, and a last time at shutdown.
struct JournalFlusher: Service {
    let journal: Journal
    var interval: Duration = .milliseconds(100)

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            journal.flush()
        }
        journal.flush()
    }
}
