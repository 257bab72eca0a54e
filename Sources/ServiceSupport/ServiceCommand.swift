import ArgumentParser
import Foundation

/// How every service's command reports a failure: one line `<service>: <reason>` on stderr and
/// an exit status — 78 (EX_CONFIG) for a wrong setting, 1 for anything else.
public enum ServiceCommand {
    /// Reads the configuration; an error becomes one line and exit status 78.
    public static func loadConfiguration<Value>(service: String, _ read: () throws -> Value) throws -> Value {
        do {
            return try read()
        } catch {
            throw fail(service: service, "\(error)", status: ConfigurationError.exitStatus)
        }
    }

    /// Runs the service; an error it ends with becomes one line and exit status 1.
    public static func run(service: String, _ body: () async throws -> Void) async throws {
        EventLoopExecutor.install()
        do {
            try await body()
        } catch {
            throw fail(service: service, "\(error)", status: ExitCode.failure.rawValue)
        }
    }

    static func fail(service: String, _ message: String, status: Int32) -> ExitCode {
        FileHandle.standardError.write(Data("\(service): \(message)\n".utf8))
        return ExitCode(status)
    }
}
