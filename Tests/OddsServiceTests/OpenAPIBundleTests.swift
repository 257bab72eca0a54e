import Contracts
import Foundation
import Testing
@testable import OddsService

/// The document served at GET /openapi.yaml is contracts/openapi.yaml made self-contained.
@Suite struct OpenAPIBundleTests {
    static let schema = #"""
    {"$id": "https://example.test/s.json", "properties": {
       "id": {"type": "string", "pattern": "^[a-z:]+$(?!\\n)", "examples": ["a:b", "São \"q\""]},
       "price": {"$ref": "#/$defs/price"}},
     "$defs": {"price": {"type": "number", "multipleOf": 0.001, "maximum": 1e3, "exclusiveMinimum": 1}}}
    """#

    func bundle(_ document: String, files: [String: String] = ["s.json": schema]) throws -> String {
        try OpenAPIBundle.bundle(document) { name in
            guard let text = files[name] else { throw OpenAPIBundle.Failure(description: "no file \(name)") }
            return Array(text.utf8)
        }
    }

    @Test func externalRefsBecomeLocalComponents() throws {
        let document = """
        openapi: 3.1.0
        paths:
          /x/{id}:
            get:
              parameters:
                - name: id
                  in: path
                  schema:
                    $ref: './s.json#/properties/id'
                - $ref: '#/components/parameters/Limit'
        components:
          parameters:
            Limit:
              name: limit
              in: query
          schemas:
            Id:
              $ref: "./s.json#/properties/id"
            Price:
              $ref: s.json#/properties/price # a comment
            Local:
              type: string

        """
        let bundled = try bundle(document)
        #expect(bundled == """
        openapi: 3.1.0
        paths:
          /x/{id}:
            get:
              parameters:
                - name: id
                  in: path
                  schema:
                    $ref: '#/components/schemas/s.properties.id'
                - $ref: '#/components/parameters/Limit'
        components:
          parameters:
            Limit:
              name: limit
              in: query
          schemas:
            # bundled from ./s.json#/properties/id
            s.properties.id: {"examples": ["a:b", "São \\"q\\""], "pattern": "^[a-z:]+$(?!\\\\n)", "type": "string"}
            # bundled from ./s.json#/properties/price
            s.properties.price: {"$ref": "#/components/schemas/s.defs.price"}
            # bundled from ./s.json#/$defs/price
            s.defs.price: {"exclusiveMinimum": 1, "maximum": 1.0e+3, "multipleOf": 0.001, "type": "number"}
            Id:
              $ref: '#/components/schemas/s.properties.id'
            Price:
              $ref: '#/components/schemas/s.properties.price'
            Local:
              type: string

        """)
        #expect(OpenAPIBundle.firstExternalRef(in: bundled) == nil)
    }

    @Test func aDocumentWithoutExternalRefsIsServedAsWritten() throws {
        let document = "openapi: 3.1.0\ncomponents:\n  schemas:\n    A:\n      $ref: '#/components/schemas/B'\n    B:\n      type: string\n"
        #expect(try bundle(document, files: [:]) == document)
    }

    @Test func componentsOrSchemasAreCreatedWhenMissing() throws {
        let noComponents = try bundle("openapi: 3.1.0\npaths:\n  /a:\n    get:\n      schema:\n        $ref: './s.json#/$defs/price'\n")
        #expect(noComponents.hasSuffix("""
        components:
          schemas:
            # bundled from ./s.json#/$defs/price
            s.defs.price: {"exclusiveMinimum": 1, "maximum": 1.0e+3, "multipleOf": 0.001, "type": "number"}

        """))
        let noSchemas = try bundle("openapi: 3.1.0\ncomponents:\n  parameters:\n    P:\n      schema:\n        $ref: './s.json#/$defs/price'\n")
        #expect(noSchemas.contains("components:\n  schemas:\n    # bundled from ./s.json#/$defs/price\n    s.defs.price: {"))
        #expect(noSchemas.contains("  parameters:\n    P:\n      schema:\n        $ref: '#/components/schemas/s.defs.price'"))
    }

    @Test func unresolvableReferencesAreClearErrors() {
        #expect(throws: OpenAPIBundle.Failure.self) {
            try bundle("a:\n  $ref: './missing.json#/x'\n")
        }
        let badPointer = #expect(throws: OpenAPIBundle.Failure.self) {
            try bundle("a:\n  $ref: './s.json#/properties/nope'\n")
        }
        #expect(badPointer?.description.contains("does not resolve") == true)
        let notJSON = #expect(throws: OpenAPIBundle.Failure.self) {
            try bundle("a:\n  $ref: './s.json#/x'\n", files: ["s.json": "{nope"])
        }
        #expect(notJSON?.description.contains("not JSON") == true)
        let remote = #expect(throws: OpenAPIBundle.Failure.self) {
            try bundle("a:\n  $ref: 'https://example.test/s.json#/x'\n")
        }
        #expect(remote?.description.contains("only files beside the document") == true)
        let flowStyle = #expect(throws: OpenAPIBundle.Failure.self) {
            try bundle("a: {$ref: './s.json#/properties/id'}\n")
        }
        #expect(flowStyle?.description.contains("does not rewrite") == true)
    }

    /// The real contract: no ref into another file is left, and the schemas the service used to
    /// leave unresolved (event id, market, price) are in components/schemas.
    @Test func theContractIsBundled() throws {
        let path = ServiceTestDatabase.repositoryRoot.appendingPathComponent("contracts/openapi.yaml").path
        let source = try String(contentsOfFile: path, encoding: .utf8)
        #expect(source.contains("./odds-update.v1.schema.json#"))
        let bundled = try OpenAPIBundle.load(path: path)
        #expect(OpenAPIBundle.firstExternalRef(in: bundled) == nil)
        #expect(!bundled.contains("$ref: './"))
        for name in ["odds-update.v1.properties.event_id", "odds-update.v1.properties.market", "odds-update.v1.defs.price"] {
            #expect(bundled.contains("\n    \(name): {"), "\(name)")
            #expect(bundled.contains("'#/components/schemas/\(name)'"), "\(name)")
        }
        #expect(bundled.contains(#""examples": ["MATCH_001", "br.serie-a:2026:r38:fla-pal"]"#))
        #expect(bundled.hasPrefix("openapi: 3.1"))
        #expect(throws: OpenAPIBundle.Failure.self) { try OpenAPIBundle.load(path: "/nonexistent/openapi.yaml") }
    }

    @Test func flowValuesAreQuotedForYAML() {
        #expect(OpenAPIBundle.quoted("a\"b\\c\nd\te\u{01}") == #""a\"b\\c\nd\te\u0001""#)
        #expect(OpenAPIBundle.yamlNumber("1e3") == "1.0e+3")
        #expect(OpenAPIBundle.yamlNumber("2.5E-2") == "2.5e-2")
        #expect(OpenAPIBundle.yamlNumber("0.001") == "0.001")
    }
}
