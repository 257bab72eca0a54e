import Contracts
import Synchronization

/// The answer of the `POST /supplier/confirm` mock.
enum ConfirmationDecision: Sendable, Equatable {
    case confirmed(confirmationId: String)
    case rejected(reason: String)
}

/// The bet-confirmation mock: confirms `confirmRate` of the requests (80% by default) and
/// rejects the rest with a plausible reason. A plain, seeded policy so tests can count.
struct ConfirmationPolicy: Sendable {
    static let rejectionReasons = ["price_changed", "market_suspended", "stake_too_high"]

    var confirmRate = 0.8
    private var generator: SeededGenerator
    private var issued: UInt64 = 0

    init(seed: UInt64, confirmRate: Double = 0.8) {
        generator = SeededGenerator(seed: seed)
        self.confirmRate = confirmRate
    }

    mutating func decide() -> ConfirmationDecision {
        if generator.unit() < confirmRate {
            issued += 1
            let number = String(issued)
            return .confirmed(confirmationId: "CNF-" + String(repeating: "0", count: max(0, 8 - number.count)) + number)
        }
        let reasons = Self.rejectionReasons
        return .rejected(reason: reasons[Int(generator.next() % UInt64(reasons.count))])
    }
}

/// A bet to confirm; every field is optional for the mock, but must have the right type.
struct ConfirmationRequest: Sendable, Equatable {
    var betId: String?
    var eventId: String?
    var market: String?
    var selection: String?
    var price: Double?

    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    static func parse(_ body: [UInt8]) throws -> ConfirmationRequest {
        let document: JSONValue
        do {
            document = try JSONParser.parse(body)
        } catch {
            throw Invalid(description: "body is not valid JSON: \(error)")
        }
        guard case .object(let fields) = document else {
            throw Invalid(description: "body must be a JSON object")
        }
        func string(_ name: String) throws -> String? {
            guard let value = fields[name] else { return nil }
            guard case .string(let text) = value else { throw Invalid(description: "\(name) must be a string") }
            return text
        }
        var request = ConfirmationRequest()
        request.betId = try string("bet_id")
        request.eventId = try string("event_id")
        request.market = try string("market")
        request.selection = try string("selection")
        if let value = fields["price"] {
            guard case .number(let number) = value else { throw Invalid(description: "price must be a number") }
            request.price = number.value
        }
        return request
    }
}

/// Thread-safe holder of the policy for the HTTP handler.
final class ConfirmationDesk: Sendable {
    private let policy: Mutex<ConfirmationPolicy>

    init(seed: UInt64) {
        policy = Mutex(ConfirmationPolicy(seed: seed))
    }

    func decide() -> ConfirmationDecision {
        policy.withLock { $0.decide() }
    }
}
