import Contracts
import Synchronization

/// Samples PostgreSQL `odds_current` and the Redis hashes while the pipeline runs and records
/// every market whose version went down between two samples: "no reader ever sees an older
/// version after a newer one", checked from the outside while duplicates, stale re-sends,
/// replays after crashes and restarts happen.
final class StoreWatch: Sendable {
    private struct State {
        var seen: [String: [MarketKey: Int64]] = [:]
        var regressions: [String] = []
        var samples = 0
        var failedReads = 0
    }

    private let state = Mutex(State())
    private let task = Mutex<Task<Void, Never>?>(nil)

    static func start(_ reader: ReadModelReader, every interval: Duration = .milliseconds(250)) -> StoreWatch {
        let watch = StoreWatch()
        watch.task.withLock {
            $0 = Task {
                while !Task.isCancelled {
                    await watch.sample(reader)
                    try? await Task.sleep(for: interval)
                }
            }
        }
        return watch
    }

    /// Stops sampling; returns how many samples were taken and every regression seen.
    func stop() async -> (samples: Int, failedReads: Int, regressions: [String]) {
        let running = task.withLock { $0 }
        running?.cancel()
        await running?.value
        return state.withLock { ($0.samples, $0.failedReads, $0.regressions) }
    }

    private func sample(_ reader: ReadModelReader) async {
        do {
            let postgres = try await reader.postgresCurrent().mapValues(\.version)
            let redis = try await reader.redisCurrent().current.mapValues(\.version)
            state.withLock { state in
                state.samples += 1
                for (store, versions) in [("postgres", postgres), ("redis", redis)] {
                    for (key, version) in versions {
                        if let before = state.seen[store]?[key], version < before, state.regressions.count < 20 {
                            state.regressions.append("\(store) \(key): version \(version) after \(before)")
                        }
                        state.seen[store, default: [:]][key] = max(version, state.seen[store]?[key] ?? 0)
                    }
                    // A market that disappears is a regression too.
                    for key in (state.seen[store] ?? [:]).keys where versions[key] == nil && state.regressions.count < 20 {
                        state.regressions.append("\(store) \(key): disappeared")
                    }
                }
            }
        } catch {
            state.withLock { $0.failedReads += 1 }
        }
    }
}
