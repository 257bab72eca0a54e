import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import Redis

@Suite("RedisConfiguration")
struct ConfigurationTests {
    @Test func hostPort() throws {
        let c = try RedisConfiguration(address: "127.0.0.1:6380")
        #expect(c.host == "127.0.0.1")
        #expect(c.port == 6380)
        #expect(c.password == nil)
        #expect(c.database == 0)
        let d = try RedisConfiguration(address: "redis-host")
        #expect(d.host == "redis-host" && d.port == 6379)
        let v6 = try RedisConfiguration(address: "[::1]:7000")
        #expect(v6.host == "::1" && v6.port == 7000)
    }

    @Test func urls() throws {
        let a = try RedisConfiguration(url: "redis://:s3cret@localhost:6390/3")
        #expect(a.host == "localhost" && a.port == 6390 && a.database == 3)
        #expect(a.username == nil && a.password == "s3cret")

        let b = try RedisConfiguration(url: "redis://alice:p%40ss%3Aword@10.0.0.1")
        #expect(b.username == "alice" && b.password == "p@ss:word" && b.port == 6379 && b.database == 0)

        let c = try RedisConfiguration(url: "REDIS://example.org:1234/")
        #expect(c.host == "example.org" && c.port == 1234 && c.database == 0)
    }

    @Test func descriptionNeverContainsPassword() throws {
        let c = try RedisConfiguration(url: "redis://alice:topsecret@localhost:6390/3")
        #expect(!c.description.contains("topsecret"))
        #expect(c.description == "redis://alice:***@localhost:6390/3")
        let error = #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis://alice:topsecret@localhost:notaport") }
        #expect(error.map { !"\($0)".contains("topsecret") } == true)
    }

    @Test(arguments: [
        "", "   ", "host:", "host:0", "host:70000", "host:abc", ":6379", "redis://", "redis://host:12/x",
        "redis://host/-1", "http://host:6379", "rediss://host:6379", "a:b:c", "host/0", "user@host:1",
        "redis://host:1?db=2", "[::1", "redis://:p%zz@host", "bad host:1",
    ])
    func malformedAddressesFailClearly(_ address: String) throws {
        let error = #expect(throws: RedisError.self) { try RedisConfiguration(address: address) }
        guard case .invalidAddress(let reason)? = error else {
            Issue.record("expected .invalidAddress for '\(address)', got \(String(describing: error))")
            return
        }
        #expect(!reason.isEmpty)
        #expect("\(error!)".hasPrefix("invalid redis address: "))
    }

    @Test func fromEnvironment() throws {
        let variable = "ODDS_REDIS_TEST_ADDR_\(UInt32.random(in: 0...UInt32.max))"
        #expect(try RedisConfiguration.fromEnvironment(variable: variable, defaultAddress: "127.0.0.1:6390").port == 6390)
        setenv(variable, "redis://:x@cache:6391/2", 1)
        defer { unsetenv(variable) }
        let c = try RedisConfiguration.fromEnvironment(variable: variable)
        #expect(c.host == "cache" && c.port == 6391 && c.database == 2 && c.password == "x")
        setenv(variable, "cache:port", 1)
        let error = #expect(throws: RedisError.self) { try RedisConfiguration.fromEnvironment(variable: variable) }
        #expect(error.map { "\($0)".contains(variable) } == true)
    }

    @Test func sha1MatchesKnownVectors() {
        #expect(SHA1.hexDigest([]) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(SHA1.hexDigest(Array("abc".utf8)) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(
            SHA1.hexDigest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        )
        #expect(SHA1.hexDigest(Array(repeating: UInt8(ascii: "a"), count: 1_000_000)) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    @Test func commandEncoding() {
        var encoder = RESPCommandEncoder()
        encoder.append(["SET", "k", .integer(-42), .bytes([0, 13, 10])])
        let expected = "*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n-42\r\n$3\r\n\u{0}\r\n\r\n"
        #expect(encoder.buffer == Array(expected.utf8))
    }
}
