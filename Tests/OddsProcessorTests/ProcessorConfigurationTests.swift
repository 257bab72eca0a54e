import Kafka
import ServiceSupport
import Testing
@testable import OddsProcessor

@Suite("odds-processor configuration (pure logic)")
struct ProcessorConfigurationTests {
    @Test("commit interval: 100 ms by default, 0 for a commit after every batch, a bad value named")
    func commitInterval() throws {
        let defaults = try ProcessorConfiguration(reader: ConfigurationReader(environment: [:]))
        #expect(defaults.commitInterval == .milliseconds(100))
        let perBatch = try ProcessorConfiguration(reader: ConfigurationReader(environment: ["PROCESSOR_COMMIT_INTERVAL_MS": "0"]))
        #expect(perBatch.commitInterval == .zero)
        #expect {
            _ = try ProcessorConfiguration(reader: ConfigurationReader(environment: ["PROCESSOR_COMMIT_INTERVAL_MS": "soon"]))
        } throws: { error in
            "\(error)".contains("PROCESSOR_COMMIT_INTERVAL_MS") && !"\(error)".contains("\n")
        }
    }

    @Test("a consumer with an auto-commit interval commits only what was stored")
    func consumerProperties() {
        var configuration = KafkaConsumerConfiguration(bootstrapServers: "127.0.0.1:9092", groupID: "g")
        #expect(configuration.librdkafkaProperties["enable.auto.commit"] == "false")
        configuration.autoCommitInterval = .milliseconds(100)
        let properties = configuration.librdkafkaProperties
        #expect(properties["enable.auto.commit"] == "true")
        #expect(properties["enable.auto.offset.store"] == "false", "never the offsets librdkafka merely handed out")
        #expect(properties["auto.commit.interval.ms"] == "100")
    }

    static let start = ContinuousClock.now

    @Test("commits: the first batch at once, then at most one per interval, one when the input pauses, none while idle")
    func commitPacing() {
        var pacer = CommitPacer(interval: .milliseconds(100))
        // (milliseconds after start, batch stored (true) or empty poll (false), commit expected, why)
        let steps: [(Int, Bool, Bool, String)] = [
            (0, false, false, "nothing stored yet: no commit"),
            (0, true, true, "the first batch after a pause commits at once"),
            (30, true, false, "within the interval"),
            (99, true, false, "within the interval"),
            (100, true, true, "an interval after the last commit"),
            (150, true, false, "within the interval"),
            (400, false, true, "the input paused with offsets not committed"),
            (650, false, false, "idle: nothing left to commit, no request"),
            (10_000, false, false, "still idle"),
        ]
        for (milliseconds, batch, expected, why) in steps {
            let now = Self.start + .milliseconds(milliseconds)
            let commits = batch ? pacer.stored(now: now) : pacer.idle(now: now)
            #expect(commits == expected, "at \(milliseconds) ms: \(why)")
        }
    }
}
