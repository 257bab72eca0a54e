import Foundation
import Testing
@testable import Contracts

/// The Swift validator and the JSON Schema (checked by scripts/check_contracts.py) must agree on
/// every file in contracts/examples: valid/ ones pass, invalid/<code>__*.json fail with <code>.
@Suite struct ContractExamplesTests {
    static let examples: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("contracts/examples")

    static func files(_ folder: String) -> [String] {
        let url = examples.appendingPathComponent(folder)
        return ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? [])
            .filter { $0.hasSuffix(".json") }.sorted()
    }

    @Test func thereAreExamplesOfEveryKind() {
        #expect(Self.files("valid").count >= 8)
        let invalidCodes = Set(Self.files("invalid").compactMap { $0.components(separatedBy: "__").first })
        let expected = Set(ValidationCode.allCases.map(\.rawValue)).subtracting(["oversize"])
        #expect(expected.subtracting(invalidCodes).isEmpty, "codes without an example: \(expected.subtracting(invalidCodes).sorted())")
    }

    @Test(arguments: files("valid"))
    func validExampleIsAccepted(name: String) throws {
        let data = try Data(contentsOf: Self.examples.appendingPathComponent("valid/\(name)"))
        let result = OddsUpdateValidator.validate(Array(data))
        if case .failure(let invalid) = result { Issue.record("\(name) rejected: \(invalid)") }
    }

    @Test(arguments: files("invalid"))
    func invalidExampleIsRejectedForItsReason(name: String) throws {
        let code = try #require(ValidationCode(rawValue: name.components(separatedBy: "__")[0]), "unknown code in \(name)")
        let data = try Data(contentsOf: Self.examples.appendingPathComponent("invalid/\(name)"))
        switch OddsUpdateValidator.validate(Array(data)) {
        case .success: Issue.record("\(name) accepted")
        case .failure(let invalid): #expect(invalid.codes == [code], "\(name): \(invalid)")
        }
    }
}
