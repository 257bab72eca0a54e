import Testing
@testable import Contracts

@Suite struct PercentEncodingTests {
    @Test(arguments: [
        ("MATCH%5F001", "MATCH_001"),
        ("br.serie-a%3A2026%3Ar38%3Afla-pal", "br.serie-a:2026:r38:fla-pal"),
        ("br.serie-a%3a2026", "br.serie-a:2026"),  // lower-case hex digits
        ("a:b", "a:b"),
        ("plain", "plain"),
        ("", ""),
        ("%253A", "%3A"),  // decoded once, not twice
        ("a%2Fb", "a/b"),
        ("S%C3%A3o", "São"),
        ("a+b", "a+b"),  // `+` is a space only in query components
    ])
    func decodesEveryEscapeOnce(encoded: String, decoded: String) {
        #expect(PercentEncoding.decode(encoded) == decoded)
    }

    @Test func plusIsASpaceInQueryComponents() {
        #expect(PercentEncoding.decode("a+b%2Bc", plusAsSpace: true) == "a b+c")
    }

    @Test(arguments: ["%", "%4", "%G1", "%4G", "abc%", "%%41", "%C3", "%FF", "%C3%28"])
    func malformedEscapesOrBytesThatAreNotUTF8AreRefused(encoded: String) {
        #expect(PercentEncoding.decode(encoded) == nil, "\(encoded)")
    }

    @Test(arguments: [
        ("/v1/%65vents/MATCH%5F001/odds", "/v1/events/MATCH_001/odds"),
        ("/ws/%6Fdds", "/ws/odds"),
        ("/ws/%6fdds", "/ws/odds"),
        ("/v1/events/a%3Ab/odds", "/v1/events/a%3Ab/odds"),  // reserved: kept for the parameter
        ("/v1/events/a%2Fb/odds", "/v1/events/a%2Fb/odds"),  // a `/` in a segment stays one segment
        ("/v1/events/%255F/odds", "/v1/events/%255F/odds"),  // `%25` is reserved: nothing is decoded twice
        ("/v1/events/%ZZ/odds", "/v1/events/%ZZ/odds"),  // malformed: left to the parameter check
        ("/%7E%2D%2E", "/~-."),
        ("/plain", "/plain"),
    ])
    func normalizationDecodesOnlyUnreservedCharacters(path: String, normalized: String) {
        #expect(PercentEncoding.normalizingUnreservedEscapes(path) == normalized)
    }

    @Test func unreservedCharactersAreThoseOfRFC3986() {
        let unreserved = (0...255).map(UInt8.init).filter(PercentEncoding.isUnreserved)
        let expected = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8).sorted()
        #expect(unreserved == expected)
    }
}
