import Foundation
import IntegrationSupport
import Kafka
import Testing

@Suite("Kafka admin and health", .timeLimit(.minutes(2)))
struct AdminTests {
    @Test("isReachable is true for the dev broker")
    func reachable() async throws {
        let admin = try KafkaAdmin(bootstrapServers: try TestInfrastructure.kafkaBrokers(), logger: KafkaTest.logger)
        #expect(await admin.isReachable(timeout: .seconds(5)))
        let metadata = try await admin.metadata()
        #expect(metadata.brokerCount >= 1)
    }

    @Test("isReachable answers false for a closed port; it does not hang")
    func unreachable() async throws {
        let port = try TestInfrastructure.freePort()
        // A liveness bound, not a benchmark: the check must return at all.
        let reachable = try await TestInfrastructure.bounded("isReachable on a closed port", timeout: .seconds(60)) {
            await KafkaAdmin.isReachable(bootstrapServers: "127.0.0.1:\(port)", timeout: .seconds(1), logger: KafkaTest.logger)
        }
        #expect(!reachable)
    }

    @Test("createTopic reports the dev broker's missing CreateTopics and carries on")
    func createTopicOnDevBroker() async throws {
        let admin = try KafkaAdmin(bootstrapServers: try TestInfrastructure.kafkaBrokers(), logger: KafkaTest.logger)
        let name = TestInfrastructure.uniqueName("admin")
        let result = try await TestInfrastructure.bounded("createTopic on the dev broker", timeout: .seconds(60)) {
            try await admin.createTopic(name, partitions: 3, timeout: .seconds(2))
        }
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
