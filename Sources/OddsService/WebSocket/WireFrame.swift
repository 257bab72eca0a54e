import NIOCore

/// Server → client WebSocket frames encoded once, header included (RFC 6455 §5.2: FIN + text
/// opcode, unmasked, 7/16/64-bit length), so an update fanned out to thousands of sockets is
/// framed once instead of once per socket by NIO's `WebSocketFrameEncoder`.
enum WireFrame {
    static func text(_ payload: ByteBuffer) -> ByteBuffer {
        let length = payload.readableBytes
        var wire = ByteBufferAllocator().buffer(capacity: length + 10)
        wire.writeInteger(UInt8(0x81))
        if length < 126 {
            wire.writeInteger(UInt8(length))
        } else if length <= Int(UInt16.max) {
            wire.writeInteger(UInt8(126))
            wire.writeInteger(UInt16(length))
        } else {
            wire.writeInteger(UInt8(127))
            wire.writeInteger(UInt64(length))
        }
        var copy = payload
        wire.writeBuffer(&copy)
        return wire
    }
}
