/// Why a frame is not a valid OddsUpdate v1. The raw values are stable: they label metrics,
/// travel in the DLQ `error` header and name the invalid examples in `contracts/examples`.
public enum ValidationCode: String, Sendable, Hashable, CaseIterable, Codable {
    case oversize
    case malformedJSON = "malformed_json"
    case notAnObject = "not_an_object"
    case missingField = "missing_field"
    case unknownField = "unknown_field"
    case wrongType = "wrong_type"
    case invalidEventId = "invalid_event_id"
    case invalidMarket = "invalid_market"
    case invalidTeam = "invalid_team"
    case invalidSource = "invalid_source"
    case emptyOdds = "empty_odds"
    case invalidSelection = "invalid_selection"
    case missingSelection = "missing_selection"
    case unknownSelection = "unknown_selection"
    case priceOutOfRange = "price_out_of_range"
    case pricePrecision = "price_precision"
    case invalidStatus = "invalid_status"
    case invalidVersion = "invalid_version"
    case invalidUpdatedAt = "invalid_updated_at"
}

public struct ValidationIssue: Sendable, Hashable, CustomStringConvertible {
    public let code: ValidationCode
    /// JSON path of the offending field, e.g. `odds.home`; nil for whole-frame problems.
    public let field: String?
    public let message: String

    public init(_ code: ValidationCode, field: String? = nil, _ message: String) {
        self.code = code
        self.field = field
        self.message = message
    }

    public var description: String {
        if let field { return "\(code.rawValue) \(field): \(message)" }
        return "\(code.rawValue): \(message)"
    }
}

/// A rejected frame with every reason it was rejected.
public struct InvalidFrame: Error, Sendable, Hashable, CustomStringConvertible {
    public let issues: [ValidationIssue]

    public init(issues: [ValidationIssue]) {
        precondition(!issues.isEmpty, "an invalid frame has at least one issue")
        self.issues = issues
    }

    /// The first reason, used as the metric label.
    public var primaryCode: ValidationCode { issues[0].code }
    public var codes: Set<ValidationCode> { Set(issues.map(\.code)) }
    /// All reasons on one line, for logs and the DLQ `error` header.
    public var description: String { issues.map(\.description).joined(separator: "; ") }
}

/// The OddsUpdate v1 rules of DESIGN.md, applied to untrusted bytes (feed frames, Kafka values)
/// or to values built in code (the simulator). Pure: no I/O, no shared state.
public enum OddsUpdateValidator {
    public static let maxFrameBytes = 16 * 1024
    public static let maxEventIdLength = 64
    public static let maxMarketLength = 32
    public static let maxTeamLength = 100
    public static let maxSourceLength = 64
    public static let maxSelections = 32
    public static let maxSelectionLength = 32
    public static let minimumPriceExclusive = 1.0
    public static let maximumPrice = 1000.0
    public static let maxPriceDecimals = 3
    /// Largest integer a JSON reader in any language keeps exactly (2^53 − 1).
    public static let maximumVersion: Int64 = 9_007_199_254_740_991

    static let requiredFields = ["event_id", "home_team", "away_team", "market", "odds", "updated_at", "source", "version"]
    static let knownFields = Set(requiredFields + ["status"])

    /// Validates raw frame bytes; on success returns the decoded update.
    public static func validate(_ frame: some Collection<UInt8>) -> Result<OddsUpdate, InvalidFrame> {
        if frame.count > maxFrameBytes {
            return .failure(InvalidFrame(issues: [ValidationIssue(
                .oversize, "frame is \(frame.count) bytes, the limit is \(maxFrameBytes)")]))
        }
        let document: JSONValue
        do {
            document = try JSONParser.parse(frame)
        } catch {
            return .failure(InvalidFrame(issues: [ValidationIssue(.malformedJSON, "not valid JSON: \(error)")]))
        }
        return validate(document)
    }

    public static func validate(_ text: String) -> Result<OddsUpdate, InvalidFrame> {
        validate(Array(text.utf8))
    }

    /// Validates a parsed document and builds the update when every rule holds.
    public static func validate(_ document: JSONValue) -> Result<OddsUpdate, InvalidFrame> {
        guard case .object(let fields) = document else {
            return .failure(InvalidFrame(issues: [ValidationIssue(
                .notAnObject, "expected a JSON object, got \(document.typeName)")]))
        }
        var issues: [ValidationIssue] = []
        for name in requiredFields where fields[name] == nil {
            issues.append(ValidationIssue(.missingField, field: name, "required field is missing"))
        }
        for name in fields.keys.sorted() where !knownFields.contains(name) {
            issues.append(ValidationIssue(.unknownField, field: name, "field is not part of OddsUpdate v1"))
        }

        func string(_ name: String) -> String? {
            guard let value = fields[name] else { return nil }
            guard case .string(let text) = value else {
                issues.append(ValidationIssue(.wrongType, field: name, "expected a string, got \(value.typeName)"))
                return nil
            }
            return text
        }

        let eventId = string("event_id")
        let homeTeam = string("home_team")
        let awayTeam = string("away_team")
        let market = string("market")
        let source = string("source")
        let updatedAtText = string("updated_at")

        var status = MarketStatus.open
        if let value = fields["status"] {
            if case .string(let text) = value {
                if let parsed = MarketStatus(rawValue: text) {
                    status = parsed
                } else {
                    issues.append(ValidationIssue(.invalidStatus, field: "status",
                                                  "must be open or suspended, got \(quoted(text))"))
                }
            } else {
                issues.append(ValidationIssue(.wrongType, field: "status", "expected a string, got \(value.typeName)"))
            }
        }

        var version: Int64?
        if let value = fields["version"] {
            if case .number(let number) = value {
                if let integer = number.integerValue, integer >= 1, integer <= maximumVersion {
                    version = integer
                } else {
                    issues.append(ValidationIssue(.invalidVersion, field: "version",
                                                  "must be an integer from 1 to \(maximumVersion), got \(number.text)"))
                }
            } else {
                issues.append(ValidationIssue(.wrongType, field: "version", "expected an integer, got \(value.typeName)"))
            }
        }

        var updatedAt: Timestamp?
        if let updatedAtText {
            updatedAt = Timestamp(rfc3339: updatedAtText)
            if updatedAt == nil {
                issues.append(ValidationIssue(.invalidUpdatedAt, field: "updated_at",
                                              "must be RFC 3339 UTC with milliseconds (2026-11-22T10:15:30.123Z), got \(quoted(updatedAtText))"))
            }
        }

        var odds: [String: Double]?
        if let value = fields["odds"] {
            if case .object(let prices) = value {
                var parsed: [String: Double] = [:]
                for (selection, price) in prices.sorted(by: { $0.key < $1.key }) {
                    guard case .number(let number) = price else {
                        issues.append(ValidationIssue(.wrongType, field: "odds.\(selection)",
                                                      "expected a number, got \(price.typeName)"))
                        continue
                    }
                    issues += priceIssues(number.value, decimals: number.decimalPlaces, field: "odds.\(selection)")
                    parsed[selection] = number.value
                }
                odds = parsed
                issues += oddsShapeIssues(selections: Array(prices.keys), market: market)
            } else {
                issues.append(ValidationIssue(.wrongType, field: "odds", "expected an object, got \(value.typeName)"))
            }
        }

        issues += identityIssues(eventId: eventId, homeTeam: homeTeam, awayTeam: awayTeam, market: market, source: source)

        guard issues.isEmpty, let eventId, let homeTeam, let awayTeam, let market, let source,
              let odds, let updatedAt, let version
        else {
            return .failure(InvalidFrame(issues: issues))
        }
        return .success(OddsUpdate(eventId: eventId, homeTeam: homeTeam, awayTeam: awayTeam, market: market,
                                   odds: odds, status: status, updatedAt: updatedAt, source: source, version: version))
    }

    /// Every rule that can be broken by a value built in code (e.g. a NaN price, version 0).
    public static func issues(in update: OddsUpdate) -> [ValidationIssue] {
        var issues = identityIssues(eventId: update.eventId, homeTeam: update.homeTeam, awayTeam: update.awayTeam,
                                    market: update.market, source: update.source)
        issues += oddsShapeIssues(selections: Array(update.odds.keys), market: update.market)
        for (selection, price) in update.odds.sorted(by: { $0.key < $1.key }) {
            issues += priceIssues(price, decimals: decimalPlaces(of: price), field: "odds.\(selection)")
        }
        if update.version < 1 || update.version > maximumVersion {
            issues.append(ValidationIssue(.invalidVersion, field: "version",
                                          "must be an integer from 1 to \(maximumVersion), got \(update.version)"))
        }
        return issues
    }

    // MARK: rules

    static func identityIssues(eventId: String?, homeTeam: String?, awayTeam: String?,
                               market: String?, source: String?) -> [ValidationIssue] {
        var issues: [ValidationIssue] = []
        if let eventId, !isToken(eventId, maxLength: maxEventIdLength, allowed: isEventIdByte) {
            issues.append(ValidationIssue(.invalidEventId, field: "event_id",
                                          "must be 1 to \(maxEventIdLength) characters of A-Z a-z 0-9 _ . : -, got \(quoted(eventId))"))
        }
        if let market, !isToken(market, maxLength: maxMarketLength, allowed: isLowerTokenByte) {
            issues.append(ValidationIssue(.invalidMarket, field: "market",
                                          "must be 1 to \(maxMarketLength) characters of a-z 0-9 _, got \(quoted(market))"))
        }
        for (name, team) in [("home_team", homeTeam), ("away_team", awayTeam)] {
            guard let team else { continue }
            if team.allSatisfy(\.isWhitespace) || team.count > maxTeamLength {
                issues.append(ValidationIssue(.invalidTeam, field: name,
                                              "must be 1 to \(maxTeamLength) characters and not blank, got \(quoted(team))"))
            }
        }
        if let source, source.isEmpty || source.count > maxSourceLength {
            issues.append(ValidationIssue(.invalidSource, field: "source",
                                          "must be 1 to \(maxSourceLength) characters, got \(quoted(source))"))
        }
        return issues
    }

    static func oddsShapeIssues(selections: [String], market: String?) -> [ValidationIssue] {
        var issues: [ValidationIssue] = []
        if selections.isEmpty {
            issues.append(ValidationIssue(.emptyOdds, field: "odds", "must have at least one selection"))
            return issues
        }
        if selections.count > maxSelections {
            issues.append(ValidationIssue(.invalidSelection, field: "odds",
                                          "has \(selections.count) selections, the limit is \(maxSelections)"))
        }
        for selection in selections.sorted()
        where !isToken(selection, maxLength: maxSelectionLength, allowed: isLowerTokenByte) {
            issues.append(ValidationIssue(.invalidSelection, field: "odds",
                                          "selection names are 1 to \(maxSelectionLength) characters of a-z 0-9 _, got \(quoted(selection))"))
        }
        if let market, let expected = KnownMarket(rawValue: market)?.selections {
            let present = Set(selections)
            for missing in expected.filter({ !present.contains($0) }) {
                issues.append(ValidationIssue(.missingSelection, field: "odds.\(missing)",
                                              "market \(market) needs selections \(expected.joined(separator: ", "))"))
            }
            for extra in present.subtracting(expected).sorted() {
                issues.append(ValidationIssue(.unknownSelection, field: "odds.\(extra)",
                                              "market \(market) has only selections \(expected.joined(separator: ", "))"))
            }
        }
        return issues
    }

    static func priceIssues(_ price: Double, decimals: Int, field: String) -> [ValidationIssue] {
        guard price.isFinite, price > minimumPriceExclusive, price <= maximumPrice else {
            return [ValidationIssue(.priceOutOfRange, field: field,
                                    "price must be a finite number above 1.0 and at most 1000, got \(price)")]
        }
        if decimals > maxPriceDecimals {
            return [ValidationIssue(.pricePrecision, field: field,
                                    "price has at most \(maxPriceDecimals) decimals, got \(price)")]
        }
        return []
    }

    /// Decimal places of a Double as its shortest round-trip text shows them (`2.15` → 2).
    static func decimalPlaces(of value: Double) -> Int {
        guard value.isFinite else { return 0 }
        guard let number = try? JSONParser.parse(Array("\(value)".utf8)), case .number(let parsed) = number else {
            return Int.max
        }
        return parsed.decimalPlaces
    }

    /// True when `text` is a valid `event_id` (1–64 of A-Z a-z 0-9 _ . : -).
    public static func isValidEventId(_ text: String) -> Bool {
        isToken(text, maxLength: maxEventIdLength, allowed: isEventIdByte)
    }

    /// True when `text` is a valid `market` (1–32 of a-z 0-9 _).
    public static func isValidMarket(_ text: String) -> Bool {
        isToken(text, maxLength: maxMarketLength, allowed: isLowerTokenByte)
    }

    static func isToken(_ text: String, maxLength: Int, allowed: (UInt8) -> Bool) -> Bool {
        let utf8 = text.utf8
        return !utf8.isEmpty && utf8.count <= maxLength && utf8.allSatisfy(allowed)
    }

    public static func isEventIdByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."),
             UInt8(ascii: ":"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    static func isLowerTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"):
            return true
        default:
            return false
        }
    }

    static func quoted(_ text: String) -> String {
        let clipped = text.count > 80 ? String(text.prefix(80)) + "…" : text
        return "\"\(clipped)\""
    }
}

/// Markets whose selections the contract fixes.
public enum KnownMarket: String, Sendable, CaseIterable {
    case matchResult = "1x2"
    case overUnder25 = "ou_2_5"
    case bothTeamsToScore = "btts"

    public var selections: [String] {
        switch self {
        case .matchResult: ["home", "draw", "away"]
        case .overUnder25: ["over", "under"]
        case .bothTeamsToScore: ["yes", "no"]
        }
    }
}
