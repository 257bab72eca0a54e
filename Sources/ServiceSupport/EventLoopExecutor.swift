import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// Optionally runs Swift concurrency's tasks on NIO's event loop threads instead of Swift's own
/// pool (`SWIFT_TASKS_ON_EVENT_LOOPS=true`). Every socket of a service is served by NIO's event
/// loops, so with two pools a message crosses from an event loop thread to a pool thread and
/// back; on one pool a task that awaits I/O resumes on the thread that did it.
///
/// Off by default, on measurements (`make bench`, 2 cores): it saved no CPU per update at 100 or
/// 1,000 updates/s, and at 10,000/s and more, with tasks and I/O sharing two threads, ingest and
/// odds-service used more CPU per update and the pipeline fell behind (10,000/s p50 215 and
/// 1,496 ms in two runs against 149 ms with it off; 15,000/s kept up only with it off).
///
/// Safe either way because no service blocks a task: librdkafka and hiredis calls run on
/// threads of their own (`BlockingWorker`, `PollThread`, `NIOThreadPool`).
public enum EventLoopExecutor {
    private static let installed = Atomic(false)

    /// Installs once per process, before the service starts its work; later calls do nothing.
    public static func install(environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard installed.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        guard environment["SWIFT_TASKS_ON_EVENT_LOOPS"]?.lowercased() == "true" else { return }
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }
}
