import Foundation
import Testing
@testable import ServiceSupport

@Suite struct ConfigurationTests {
    @Test func overridesBeatEnvironmentWhichBeatsDefaults() throws {
        let reader = ConfigurationReader(environment: ["HTTP_PORT": "8088", "METRICS_PORT": "9000"],
                                         overrides: ["HTTP_PORT": "7000", "METRICS_PORT": nil])
        #expect(try reader.port("HTTP_PORT", default: 8080) == 7000)
        #expect(try reader.port("METRICS_PORT", default: 9095) == 9000)
        #expect(try reader.port("OTHER_PORT", default: 1234) == 1234)
    }

    @Test(arguments: [("abc", "must be an integer"), ("0", "between 1 and 65535"), ("70000", "between 1 and 65535")])
    func badPortsFailWithOneLineNamingTheKey(value: String, expected: String) {
        let reader = ConfigurationReader(environment: ["HTTP_PORT": value])
        do {
            _ = try reader.port("HTTP_PORT", default: 8080)
            Issue.record("accepted \(value)")
        } catch let error as ConfigurationError {
            #expect(error.description.hasPrefix("invalid configuration: HTTP_PORT"))
            #expect(error.description.contains(expected))
            #expect(!error.description.contains("\n"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func brokerListsAndAddresses() throws {
        let reader = ConfigurationReader(environment: ["KAFKA_BROKERS": "a:9092, 127.0.0.1:19092,[::1]:9093", "BAD": "a:9092,,b",
                                                       "REDIS_ADDR": "localhost"])
        #expect(try reader.hostAndPortList("KAFKA_BROKERS", default: "x:1").map(\.description)
            == ["a:9092", "127.0.0.1:19092", "[::1]:9093"])
        #expect(throws: ConfigurationError.self) { try reader.hostAndPortList("BAD", default: "") }
        #expect(throws: ConfigurationError.self) { try reader.hostAndPort("REDIS_ADDR", default: "") }
        #expect(try reader.hostAndPort("MISSING", default: "127.0.0.1:6380") == HostAndPort(host: "127.0.0.1", port: 6380))
    }

    @Test func urlsBooleansAndChoices() throws {
        let reader = ConfigurationReader(environment: [
            "SUPPLIER_WS_URL": "ws://127.0.0.1:8081/ws", "BAD_URL": "http//nope", "FLAG": "yes", "BAD_FLAG": "maybe",
            "LOG_FORMAT": "TEXT", "LOG_LEVEL": "verbose",
        ])
        #expect(try reader.url("SUPPLIER_WS_URL", default: "", schemes: ["ws", "wss"]).port == 8081)
        #expect(throws: ConfigurationError.self) { try reader.url("BAD_URL", default: "", schemes: ["ws"]) }
        #expect(try reader.boolean("FLAG", default: false))
        #expect(throws: ConfigurationError.self) { try reader.boolean("BAD_FLAG", default: false) }
        #expect(try reader.choice("LOG_FORMAT", default: LogFormat.json) == .text)
        #expect(throws: ConfigurationError.self) { try LoggingConfiguration(reader: reader) }
        let good = try LoggingConfiguration(reader: ConfigurationReader(environment: ["LOG_LEVEL": "WARN"]))
        #expect(good.level == .warning)
        #expect(good.format == .json)
    }
}

@Suite struct JSONLogHandlerTests {
    @Test func timestampsAreRFC3339WithMilliseconds() {
        let text = JSONLogHandler.timestamp()
        #expect(text.count == 24)
        #expect(text.hasSuffix("Z"))
        #expect(text.dropFirst(19).hasPrefix("."))
    }

    @Test func metadataBecomesJSONValues() throws {
        let plain = JSONLogHandler.plain(.dictionary(["a": .array([.string("x"), .stringConvertible(3)])]))
        let data = try JSONSerialization.data(withJSONObject: plain, options: [.sortedKeys])
        #expect(String(decoding: data, as: UTF8.self) == #"{"a":["x","3"]}"#)
    }
}
