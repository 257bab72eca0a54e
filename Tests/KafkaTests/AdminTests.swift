import Foundation
import IntegrationSupport
import Kafka
import Testing

@Suite("Kafka admin and health")
struct AdminTests {
    @Test("isReachable is true for the dev broker")
    func reachable() async throws {
        let admin = try KafkaAdmin(bootstrapServers: try TestInfrastructure.kafkaBrokers(), logger: KafkaTest.logger)
        #expect(await admin.isReachable(timeout: .seconds(5)))
        let metadata = try await admin.metadata()
        #expect(metadata.brokerCount >= 1)
    }

    @Test("isReachable is false, within its timeout, for a closed port")
    func unreachable() async throws {
        let port = try TestInfrastructure.freePort()
        let started = ContinuousClock.now
        let reachable = await KafkaAdmin.isReachable(bootstrapServers: "127.0.0.1:\(port)", timeout: .seconds(1), logger: KafkaTest.logger)
        #expect(!reachable)
        // A bound, not a benchmark: the check must not hang past its timeout (generous for a
        // loaded 2-core CI machine).
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test("createTopic reports the dev broker's missing CreateTopics and carries on")
    func createTopicOnDevBroker() async throws {
        let admin = try KafkaAdmin(bootstrapServers: try TestInfrastructure.kafkaBrokers(), logger: KafkaTest.logger)
        let started = ContinuousClock.now
        let result = try await admin.createTopic(TestInfrastructure.uniqueName("admin"), partitions: 3, timeout: .seconds(2))
        #expect(ContinuousClock.now - started < .seconds(5))
        guard case .unsupported = result else {
            Issue.record("the dev broker has no CreateTopics, expected .unsupported, got \(result)")
            return
        }
    }

    @Test("invalid configuration fails with the property named")
    func invalidConfiguration() throws {
        var configuration = KafkaProducerConfiguration(bootstrapServers: "127.0.0.1:1")
        configuration.properties["no.such.property"] = "1"
        #expect { _ = try KafkaProducer(configuration: configuration) } throws: { error in
            (error as? KafkaError)?.context.contains("no.such.property") == true
        }
    }
}
