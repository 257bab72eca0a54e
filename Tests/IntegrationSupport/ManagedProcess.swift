import Foundation

/// The one way tests start child processes: `posix_spawn` + `waitpid`. Foundation's `Process`
/// is not used: on Linux it can miss a child's exit (it watches the child's inherited
/// descriptors, which a grandchild may keep open), which once left a test waiting forever.
enum ChildSpawn {
    /// Starts `executable` with default signal handling and an empty signal mask (whatever the
    /// test runner blocked), stdin from /dev/null, stdout and stderr to `outputPath` (or
    /// /dev/null), and no descriptor of the test process besides those three.
    static func spawn(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                      outputPath: String? = nil) throws -> pid_t {
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fileActions, 1, outputPath ?? "/dev/null", O_WRONLY | O_APPEND | O_CREAT, 0o644)
        posix_spawn_file_actions_adddup2(&fileActions, 1, 2)
        // Sockets and pipes of the test process must not stay open in a child: a server the
        // child outlives would never see its clients close.
        _ = addCloseFrom?(&fileActions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let merged = ProcessInfo.processInfo.environment.merging(environment ?? [:]) { $1 }
        let envp: [UnsafeMutablePointer<CChar>?] = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }

        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &fileActions, &attributes, argv, envp)
        guard result == 0 else {
            throw TestFailure("cannot start \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which Swift's Glibc module
    /// does not declare.
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
    private static let addCloseFrom: AddCloseFrom? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()

    /// Shell-style status: the exit code, or 128 + the signal that ended the process.
    static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// Runs a command to completion on the calling thread; throws unless it exits 0.
    static func runBlocking(_ executable: String, _ arguments: [String]) throws {
        let pid = try spawn(executable, arguments)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        guard status == 0 else {
            throw TestFailure("\(executable) \(arguments.joined(separator: " ")) exited with status \(decode(status))")
        }
    }
}

/// A child process started by a test; killed when released so no test leaves servers behind.
/// Its exit is noticed by a thread blocked in `waitid`, which wakes every waiter: no polling,
/// and every wait has a deadline.
public final class ManagedProcess: @unchecked Sendable {
    public let pid: Int32
    public let executableName: String
    public let outputURL: URL

    private let lock = NSCondition()
    /// Shell-style status once the child was reaped.
    private var status: Int32?
    private var waiters: [UUID: CheckedContinuation<Int32?, Never>] = [:]

    public init(executable: URL, arguments: [String], environment: [String: String]? = nil) throws {
        executableName = executable.lastPathComponent
        outputURL = Self.logDirectory.appendingPathComponent("\(executableName)-\(UUID().uuidString.prefix(8)).log")
        pid = try ChildSpawn.spawn(executable.path, arguments, environment: environment, outputPath: outputURL.path)
        Self.live.register(pid)
        let thread = Thread { [pid, weak self] in
            // Wait without reaping, so the pid cannot be reused while `kill` may still target it.
            var info = siginfo_t()
            while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == -1 && errno == EINTR {}
            ManagedProcess.live.unregister(pid)
            var raw: Int32 = 0
            if let self {
                self.lock.lock()
                while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
                self.finish(ChildSpawn.decode(raw))
            } else {
                while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
            }
        }
        thread.name = "reaper-\(pid)"
        thread.start()
    }

    /// Called with `lock` held; releases it.
    private func finish(_ decoded: Int32) {
        status = decoded
        let resumed = waiters
        waiters.removeAll()
        lock.broadcast()
        lock.unlock()
        for continuation in resumed.values { continuation.resume(returning: decoded) }
    }

    /// Where children write their output: `ODDS_TEST_LOG_DIR` (set by `make test`, so its
    /// watchdog can show a stuck test's children), else the temporary folder.
    static let logDirectory: URL = {
        if let folder = ProcessInfo.processInfo.environment["ODDS_TEST_LOG_DIR"], !folder.isEmpty {
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            return URL(fileURLWithPath: folder, isDirectory: true)
        }
        return FileManager.default.temporaryDirectory
    }()

    public var isRunning: Bool { lock.withLock { status == nil } }
    /// Exit code, or 128 + signal; nil while running.
    public var terminationStatus: Int32? { lock.withLock { status } }
    public var output: String { (try? String(contentsOf: outputURL, encoding: .utf8)) ?? "" }

    /// Sends `signal` unless the child is already gone.
    public func signal(_ signal: Int32) {
        lock.withLock { if status == nil { _ = kill(pid, signal) } }
    }

    /// Waits for the exit without holding a thread; nil when it did not exit within `timeout`.
    public func waitForExit(timeout: Duration) async -> Int32? {
        let id = UUID()
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            self?.resumeWaiter(id, with: nil)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { continuation in
            lock.lock()
            if let status {
                lock.unlock()
                continuation.resume(returning: status)
            } else {
                waiters[id] = continuation
                lock.unlock()
            }
        }
    }

    private func resumeWaiter(_ id: UUID, with value: Int32?) {
        let continuation = lock.withLock { waiters.removeValue(forKey: id) }
        continuation?.resume(returning: value)
    }

    /// Sends `signal` (SIGTERM by default, SIGKILL for crash tests) and waits for the exit, at
    /// most `timeout`, then kills it. Returns the status (128 + 9 when it had to be killed).
    /// Blocks the calling thread: prefer `stopAsync` in async code.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(10)) -> Int32 {
        self.signal(signal)
        if let status = waitBlocking(timeout) { return status }
        self.signal(SIGKILL)
        return waitBlocking(.seconds(30)) ?? 128 + SIGKILL
    }

    /// `stop` without holding a thread of the cooperative pool while the process exits.
    @discardableResult
    public func stopAsync(signal: Int32 = SIGTERM, timeout: Duration = .seconds(10)) async -> Int32 {
        self.signal(signal)
        if let status = await waitForExit(timeout: timeout) { return status }
        self.signal(SIGKILL)
        return await waitForExit(timeout: .seconds(30)) ?? 128 + SIGKILL
    }

    private func waitBlocking(_ timeout: Duration) -> Int32? {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let deadline = Date(timeIntervalSinceNow: seconds)
        lock.lock()
        defer { lock.unlock() }
        while status == nil && lock.wait(until: deadline) {}
        return status
    }

    /// Runs a command to completion: its status and output, or a failure naming the command
    /// when it did not finish within `timeout` (it is killed then).
    public static func run(_ executable: URL, arguments: [String], environment: [String: String]? = nil,
                           timeout: Duration) async throws -> (status: Int32, output: String) {
        let process = try ManagedProcess(executable: executable, arguments: arguments, environment: environment)
        guard let status = await process.waitForExit(timeout: timeout) else {
            await process.stopAsync(signal: SIGKILL)
            throw TestFailure("\(executable.lastPathComponent) \(arguments.joined(separator: " ")) did not finish within \(timeout): \(process.output.suffix(4000))")
        }
        return (status, process.output)
    }

    /// Finds `name` on PATH (for system servers such as `redis-server`).
    public static func which(_ name: String) throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"] {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw TestInfrastructure.Missing(variable: "\(name) on PATH")
    }

    /// Children still running when the test process exits (a cleanup that was still pending in
    /// a detached task) are killed at exit, so no run leaves servers behind.
    final class LiveChildren: @unchecked Sendable {
        private let lock = NSLock()
        private var pids: Set<Int32> = []
        private var installed = false

        func register(_ pid: Int32) {
            lock.withLock {
                pids.insert(pid)
                if !installed {
                    installed = true
                    atexit { ManagedProcess.live.killAll() }
                }
            }
        }

        func unregister(_ pid: Int32) {
            _ = lock.withLock { pids.remove(pid) }
        }

        func killAll() {
            // A registered pid is not reaped yet (the reaper unregisters it first), so it was not reused.
            lock.withLock {
                for pid in pids { kill(pid, SIGKILL) }
                pids.removeAll()
            }
        }
    }

    static let live = LiveChildren()

    deinit {
        if status == nil {
            kill(pid, SIGKILL)
            // The reaper thread reaps it; it holds no reference to this object.
        }
        if !Self.keepsLogs { try? FileManager.default.removeItem(at: outputURL) }
    }

    /// `ODDS_TEST_KEEP_LOGS=1` keeps every child's log after the test (for a failure that
    /// needs more than the tail the watchdog prints).
    static let keepsLogs = ProcessInfo.processInfo.environment["ODDS_TEST_KEEP_LOGS"] == "1"
}
