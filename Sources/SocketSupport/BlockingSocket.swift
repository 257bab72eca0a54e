#if canImport(Glibc)
import Glibc
#endif

/// Blocking IPv4 TCP sockets for tools and tests (load clients, port probes, raw HTTP): plain
/// descriptors, no event loop. The caller owns (and closes) what it gets.
public enum BlockingSocket {
    /// A TCP socket connected to `host` (a dotted IPv4 address) and `port`, or nil (nothing
    /// leaks on failure). `configure` runs on the socket before it connects (buffer sizes,
    /// timeouts).
    public static func connect(host: String = "127.0.0.1", port: Int, configure: (Int32) -> Void = { _ in }) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        configure(fd)
        var address = loopbackAddress(host: host, port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// True when something accepts TCP connections on 127.0.0.1:`port`.
    public static func canConnect(port: Int) -> Bool {
        guard let fd = connect(port: port) else { return false }
        close(fd)
        return true
    }

    /// A port on 127.0.0.1 that was free a moment ago (bound to port 0 and read back).
    public static func freeLoopbackPort() -> Int? {
        guard let (fd, port) = bindAnyPort(host: "127.0.0.1") else { return nil }
        close(fd)
        return port
    }

    /// A socket listening on `host` at a port the system picked, and that port; nil on failure.
    public static func listen(host: String = "127.0.0.1", backlog: Int32 = 128) -> (fd: Int32, port: Int)? {
        guard let (fd, port) = bindAnyPort(host: host) else { return nil }
        guard Glibc.listen(fd, backlog) == 0 else {
            close(fd)
            return nil
        }
        return (fd, port)
    }

    private static func bindAnyPort(host: String) -> (fd: Int32, port: Int)? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = loopbackAddress(host: host, port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard bound == 0, named == 0 else {
            close(fd)
            return nil
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// Sets an integer socket option (e.g. TCP_NODELAY, SO_RCVBUF).
    public static func setOption(_ fd: Int32, level: Int32, name: Int32, value: Int32) {
        var value = value
        setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    private static func loopbackAddress(host: String, port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr(host)
        return address
    }
}
