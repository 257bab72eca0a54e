import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// Runs Swift concurrency's tasks on NIO's event loop threads instead of a second pool of its
/// own. Every socket of a service (HTTP, WebSocket, PostgreSQL) is served by NIO's event loops,
/// so with two pools each frame crossed from an event loop thread to a pool thread and back: a
/// thread wake-up (futex, context switch) per hop, which is most of what a service spent per
/// update at low rates. On one pool, a task that awaits I/O resumes on the thread that did it.
///
/// Only safe because no service blocks a task: librdkafka and hiredis calls run on threads of
/// their own (`BlockingWorker`, `PollThread`, `NIOThreadPool`). `SWIFT_TASKS_ON_EVENT_LOOPS=false`
/// turns it off (then Swift's own pool runs the tasks, as before).
public enum EventLoopExecutor {
    private static let installed = Atomic(false)

    /// Installs once per process, before the service starts its work; later calls do nothing.
    public static func install(environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard installed.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        guard environment["SWIFT_TASKS_ON_EVENT_LOOPS"]?.lowercased() != "false" else { return }
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }
}
