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
}
