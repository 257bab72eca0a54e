import Foundation
import ServiceSupport
import Testing
@testable import SupplierSimulator

@Suite("Supplier pacing, schedules, confirmations and configuration (pure logic)")
struct PacingAndConfigurationTests {
    @Test("pacing emits exactly rate × time in 5 ms batches, even at 50,000/s")
    func pacingIsAccurate() {
        for rate in [1, 20, 1_000, 50_000] {
            var pacer = RatePacer(rate: Double(rate))
            var total = 0
            var tick = Duration.zero
            while tick <= .seconds(2) {
                let due = pacer.framesDue(now: tick)
                pacer.record(emitted: due)
                total += due
                tick += .milliseconds(5)
            }
            // Frame k is due at k / rate: 2 s hold rate × 2 + 1 frames (the first at t = 0).
            #expect(total == rate * 2 + 1, "rate \(rate): \(total)")
        }
    }

    @Test("waking only when the next frame is due keeps the rate with one wake-up per frame at low rates")
    func wakingAtNextDue() throws {
        for (rate, minimumGap) in [(100, Duration.milliseconds(1)), (10_000, .milliseconds(1))] {
            var pacer = RatePacer(rate: Double(rate))
            var now = Duration.zero
            var wakeUps = 0
            var total = 0
            #expect(pacer.nextDue == nil)
            while now <= .seconds(2) {
                let due = pacer.framesDue(now: now)
                pacer.record(emitted: due)
                total += due
                wakeUps += 1
                let next = try #require(pacer.nextDue, "due time known once pacing started")
                #expect(next > now, "rate \(rate): the next frame is due in the future")
                now = max(now + minimumGap, next)
            }
            #expect(total == rate * 2 + 1, "rate \(rate): \(total) frames")
            // 100/s: a wake-up per frame; 10,000/s: one per millisecond, 10 frames each.
            #expect(wakeUps == min(rate, 1_000) * 2 + 1, "rate \(rate): \(wakeUps) wake-ups")
        }
    }

    @Test("after a stall the pacer skips ahead instead of bursting; reset starts over")
    func pacingAfterStall() {
        var pacer = RatePacer(rate: 1_000)
        pacer.record(emitted: pacer.framesDue(now: .zero))
        let burst = pacer.framesDue(now: .seconds(5))
        #expect(burst == 100)  // at most 100 ms worth
        pacer.record(emitted: burst)
        let afterCatchUp = pacer.framesDue(now: .seconds(5) + .milliseconds(10))
        #expect(afterCatchUp == 10)
        pacer.reset()
        let afterReset = pacer.framesDue(now: .seconds(60))
        #expect(afterReset == 1)
    }

    @Test("disconnect schedule fires once per period, never when off")
    func disconnectSchedule() {
        let times: [Duration] = [.zero, .seconds(1), .seconds(2), .seconds(3), .seconds(4.5), .seconds(100)]
        var off = DisconnectSchedule(period: nil)
        let offAnswers = times.map { off.isDue(now: $0) }
        #expect(offAnswers == [false, false, false, false, false, false])
        var every = DisconnectSchedule(period: .seconds(2))
        let answers = times.map { every.isDue(now: $0) }
        #expect(answers == [false, false, true, false, true, true])
    }

    @Test("confirmation mock confirms about 80% and rejects the rest with a reason")
    func confirmations() throws {
        var policy = ConfirmationPolicy(seed: 1)
        var confirmed = 0
        var ids: Set<String> = []
        for _ in 0..<10_000 {
            switch policy.decide() {
            case .confirmed(let id):
                confirmed += 1
                ids.insert(id)
            case .rejected(let reason):
                #expect(ConfirmationPolicy.rejectionReasons.contains(reason))
            }
        }
        #expect(confirmed > 7_800 && confirmed < 8_200)
        #expect(ids.count == confirmed)
        #expect(try ConfirmationRequest.parse(Array(#"{"bet_id":"b-1","price":2.5}"#.utf8)) == ConfirmationRequest(betId: "b-1", price: 2.5))
        #expect(throws: ConfirmationRequest.Invalid.self) { try ConfirmationRequest.parse(Array("[1]".utf8)) }
        #expect(throws: ConfirmationRequest.Invalid.self) { try ConfirmationRequest.parse(Array("{".utf8)) }
        #expect(throws: ConfirmationRequest.Invalid.self) { try ConfirmationRequest.parse(Array(#"{"price":"2"}"#.utf8)) }
    }

    @Test("configuration: defaults, environment, flag overrides")
    func configuration() throws {
        let defaults = try SupplierConfiguration(reader: ConfigurationReader(environment: [:]), randomSeed: { 5 })
        #expect(defaults.httpPort == 8081 && defaults.metricsPort == 9094)
        #expect(defaults.rate == 20 && defaults.generatedEvents == 6 && defaults.seed == 5)
        #expect(defaults.journalPath == nil && defaults.faults == FaultRates() && defaults.disconnectEvery == nil)

        let reader = ConfigurationReader(
            environment: ["SUPPLIER_RATE": "1000", "SUPPLIER_FAULT_MALFORMED": "0.05", "SUPPLIER_SEED": "99",
                          "SUPPLIER_DISCONNECT_EVERY": "2.5", "SUPPLIER_JOURNAL": "/tmp/j.jsonl"],
            overrides: ["SUPPLIER_RATE": "50000", "SUPPLIER_FAULT_INVALID": "0.1"])
        let configured = try SupplierConfiguration(reader: reader)
        #expect(configured.rate == 50_000)
        #expect(configured.faults == FaultRates(malformed: 0.05, invalid: 0.1))
        #expect(configured.seed == 99)
        #expect(configured.disconnectEvery == .milliseconds(2_500))
        #expect(configured.journalPath == "/tmp/j.jsonl")
    }

    @Test("configuration: a bad value is one clear error naming the key", arguments: [
        ("SUPPLIER_RATE", "0", "SUPPLIER_RATE must be between 1 and 50000, got 0"),
        ("SUPPLIER_RATE", "50001", "SUPPLIER_RATE must be between 1 and 50000, got 50001"),
        ("SUPPLIER_RATE", "fast", "SUPPLIER_RATE must be an integer"),
        ("SUPPLIER_FAULT_DUPLICATE", "1.5", "SUPPLIER_FAULT_DUPLICATE must be between 0.0 and 1.0"),
        ("SUPPLIER_FAULT_INVALID", "often", "SUPPLIER_FAULT_INVALID must be a number"),
        ("SUPPLIER_SEED", "-1", "SUPPLIER_SEED must be an unsigned integer"),
        ("SUPPLIER_DISCONNECT_EVERY", "-3", "SUPPLIER_DISCONNECT_EVERY must be between"),
        ("HTTP_PORT", "70000", "HTTP_PORT must be between 1 and 65535"),
    ])
    func badConfiguration(key: String, value: String, message: String) {
        #expect {
            _ = try SupplierConfiguration(reader: ConfigurationReader(environment: [key: value]))
        } throws: { error in
            "\(error)".contains(message) && !"\(error)".contains("\n")
        }
    }

    @Test("configuration: fault rates must add up to at most 1")
    func faultSum() {
        let reader = ConfigurationReader(environment: ["SUPPLIER_FAULT_MALFORMED": "0.6", "SUPPLIER_FAULT_INVALID": "0.6"])
        #expect(throws: ConfigurationError.self) { try SupplierConfiguration(reader: reader) }
    }
}
