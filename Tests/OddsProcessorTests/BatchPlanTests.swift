import Contracts
import Kafka
import Testing
@testable import OddsProcessor

func update(_ event: String, _ market: String = "1x2", version: Int64, home: Double = 2.0) -> OddsUpdate {
    OddsUpdate(eventId: event, homeTeam: "Flamengo", awayTeam: "Palmeiras", market: market,
               odds: market == "1x2" ? ["home": home, "draw": 3.3, "away": 3.6] : ["yes": 1.9, "no": 1.9],
               updatedAt: Timestamp(millisecondsSinceEpoch: 1_795_000_000_000 + version), source: "test", version: version)
}

func message(_ value: [UInt8], partition: Int32 = 0, offset: Int64) -> KafkaConsumerMessage {
    KafkaConsumerMessage(topic: "odds_updates", partition: partition, offset: offset, key: Array("k".utf8),
                         value: value, headers: [], timestampMilliseconds: nil)
}

@Suite struct BatchPlanTests {
    @Test func collapsesToTheNewestVersionPerMarketAndKeepsPoisonApart() {
        let messages = [
            message(Array(update("E1", version: 3).jsonData()), partition: 0, offset: 10),
            message(Array(update("E1", version: 5).jsonData()), partition: 0, offset: 11),
            message(Array(update("E1", version: 4).jsonData()), partition: 0, offset: 12),
            message(Array(update("E1", "btts", version: 1).jsonData()), partition: 0, offset: 13),
            message(Array(#"{"not":"odds"}"#.utf8), partition: 1, offset: 7),
            message(Array(update("E2", version: 9).jsonData()), partition: 1, offset: 8),
        ]
        let plan = BatchPlan(messages: messages)
        #expect(plan.updates.map { "\($0.eventId)/\($0.market)@\($0.version)" } == ["E1/1x2@5", "E1/btts@1", "E2/1x2@9"])
        #expect(plan.poison.count == 1)
        #expect(plan.poison.first?.message.offset == 7)
        #expect(plan.collapsedCount == 2)
        #expect(plan.messageCount == 6)
        #expect(Set(plan.commitPositions) == [
            TopicPartitionOffset(topic: "odds_updates", partition: 0, offset: 14),
            TopicPartitionOffset(topic: "odds_updates", partition: 1, offset: 9),
        ])
    }

    @Test func deadLetterCarriesOriginalBytesReasonAndOrigin() throws {
        let poisonMessage = message(Array("{oops".utf8), partition: 3, offset: 42)
        let plan = BatchPlan(messages: [poisonMessage])
        let record = BatchPlan.deadLetter(try #require(plan.poison.first), topic: "odds_updates_dlq")
        #expect(record.topic == "odds_updates_dlq")
        #expect(record.value == Array("{oops".utf8))
        let headers = Dictionary(uniqueKeysWithValues: record.headers.map { ($0.key, $0.stringValue) })
        #expect(headers["error"]?.hasPrefix("malformed_json") == true)
        #expect(headers["source"] == "odds-processor")
        #expect(headers["original_topic"] == "odds_updates")
        #expect(headers["original_partition"] == "3")
        #expect(headers["original_offset"] == "42")
    }

    @Test func latestPerMarketDropsStaleAndDuplicates() {
        var latest = LatestPerMarket()
        let results = [2, 2, 1, 3].map { latest.offer(update("E", version: Int64($0))) }
        #expect(results == [true, false, false, true])
        #expect(latest.updates.map(\.version) == [3])
    }
}
