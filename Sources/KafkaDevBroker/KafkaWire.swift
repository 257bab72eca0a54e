/// The few pieces of the Kafka wire protocol the long-poll front reads or rewrites, as pure
/// functions over one frame (the bytes after the 4-byte size prefix). Only the non-flexible
/// versions librdkafka 2.0.2 sends are understood (Fetch ≤ v11, Metadata ≤ v8, FindCoordinator
/// ≤ v2, Produce ≤ v8); anything else passes through untouched, so the worst case of a version
/// this does not know is the mock's own behaviour, never a corrupted frame.
enum KafkaWire {
    enum APIKey: Int16 {
        case produce = 0
        case fetch = 1
        case metadata = 3
        case findCoordinator = 10
    }

    struct RequestHeader: Equatable {
        let apiKey: Int16
        let apiVersion: Int16
        let correlationID: Int32
        /// Where the request body starts (after client_id); nil when the frame is too short.
        let bodyOffset: Int?
    }

    /// Every request header version starts with api_key, api_version, correlation_id and a
    /// (non-compact) nullable client_id string.
    static func requestHeader(_ frame: [UInt8]) -> RequestHeader? {
        var reader = Reader(frame)
        guard let key = reader.int16(), let version = reader.int16(), let correlation = reader.int32() else { return nil }
        let body: Int? = reader.skipNullableString() ? reader.offset : nil
        return RequestHeader(apiKey: key, apiVersion: version, correlationID: correlation, bodyOffset: body)
    }

    // MARK: Fetch

    /// Offset of max_wait_ms in a Fetch request the front may hold: v4...v11, whose answers
    /// `fetchResponseHasDataOrError` reads (replica_id, max_wait_ms, min_bytes lead the body).
    static func fetchMaxWaitOffset(_ header: RequestHeader, frameSize: Int) -> Int? {
        guard header.apiKey == APIKey.fetch.rawValue, (4...11).contains(header.apiVersion),
              let body = header.bodyOffset, body + 8 <= frameSize else { return nil }
        return body + 4
    }

    static func readInt32(_ frame: [UInt8], at offset: Int) -> Int32 {
        var reader = Reader(frame)
        reader.offset = offset
        return reader.int32() ?? 0
    }

    static func writeInt32(_ value: Int32, into frame: inout [UInt8], at offset: Int) {
        let bits = UInt32(bitPattern: value)
        frame[offset] = UInt8(truncatingIfNeeded: bits >> 24)
        frame[offset + 1] = UInt8(truncatingIfNeeded: bits >> 16)
        frame[offset + 2] = UInt8(truncatingIfNeeded: bits >> 8)
        frame[offset + 3] = UInt8(truncatingIfNeeded: bits)
    }

    /// Whether a Fetch response (v4...v11) is worth answering now: it carries records or an
    /// error. nil when the frame cannot be read as that version (then it is answered as it is).
    static func fetchResponseHasDataOrError(_ frame: [UInt8], version: Int16) -> Bool? {
        guard (4...11).contains(version) else { return nil }
        var reader = Reader(frame)
        guard reader.int32() != nil,  // correlation_id
              reader.int32() != nil   // throttle_time_ms
        else { return nil }
        if version >= 7 {
            guard let error = reader.int16(), reader.int32() != nil else { return nil }  // error_code, session_id
            if error != 0 { return true }
        }
        guard let topics = reader.int32(), topics >= 0 else { return nil }
        for _ in 0..<topics {
            guard reader.skipString(), let partitions = reader.int32(), partitions >= 0 else { return nil }
            for _ in 0..<partitions {
                guard reader.int32() != nil, let error = reader.int16() else { return nil }  // partition, error_code
                if error != 0 { return true }
                // high_watermark, last_stable_offset, log_start_offset (v5+)
                guard reader.skip(version >= 5 ? 24 : 16), let aborted = reader.int32() else { return nil }
                if aborted > 0 { guard reader.skip(Int(aborted) * 16) else { return nil } }
                if version >= 11 { guard reader.skip(4) else { return nil } }  // preferred_read_replica
                guard let records = reader.int32() else { return nil }
                if records > 0 { return true }
            }
        }
        return false
    }

    /// Topics a Fetch request (v4...v11) asks for; nil when unreadable.
    static func fetchTopics(_ frame: [UInt8], header: RequestHeader) -> Set<String>? {
        guard header.apiKey == APIKey.fetch.rawValue, (4...11).contains(header.apiVersion),
              let body = header.bodyOffset else { return nil }
        let version = header.apiVersion
        var reader = Reader(frame)
        reader.offset = body
        // replica_id, max_wait_ms, min_bytes, max_bytes, isolation_level; session id and epoch (v7+)
        guard reader.skip(17 + (version >= 7 ? 8 : 0)) else { return nil }
        let partitionSize = 4 + (version >= 9 ? 4 : 0) + 8 + (version >= 5 ? 8 : 0) + 4
        return reader.topicNames { reader in
            guard let partitions = reader.int32(), partitions >= 0 else { return false }
            return reader.skip(Int(partitions) * partitionSize)
        }
    }

    // MARK: Produce

    /// Topics a Produce request (v3...v8) writes to; nil when unreadable.
    static func produceTopics(_ frame: [UInt8], header: RequestHeader) -> Set<String>? {
        producedRecords(frame, header: header).map { Set($0.writes.map(\.topic)) }
    }

    /// acks of a Produce request (v0...v8); nil when unreadable. acks = 0 gets no response.
    static func produceAcks(_ frame: [UInt8], header: RequestHeader) -> Int16? {
        guard header.apiKey == APIKey.produce.rawValue, (0...8).contains(header.apiVersion),
              let body = header.bodyOffset else { return nil }
        var reader = Reader(frame)
        reader.offset = body
        if header.apiVersion >= 3 { guard reader.skipNullableString() else { return nil } }  // transactional_id
        return reader.int16()
    }

    // MARK: Broker addresses

    /// Rewrites the port of every broker in a Metadata response (v0...v8) through `map`, in
    /// place (a port is a fixed-size field). Returns false when the frame cannot be read.
    static func rewriteMetadataPorts(_ frame: inout [UInt8], version: Int16, map: (Int32) -> Int32) -> Bool {
        guard (0...8).contains(version) else { return false }
        var reader = Reader(frame)
        guard reader.int32() != nil else { return false }  // correlation_id
        if version >= 3 { guard reader.int32() != nil else { return false } }  // throttle_time_ms
        guard let brokers = reader.int32(), brokers >= 0 else { return false }
        var ports: [Int] = []
        for _ in 0..<brokers {
            guard reader.int32() != nil, reader.skipString() else { return false }  // node_id, host
            ports.append(reader.offset)
            guard reader.skip(4) else { return false }
            if version >= 1 { guard reader.skipNullableString() else { return false } }  // rack
        }
        for offset in ports { writeInt32(map(readInt32(frame, at: offset)), into: &frame, at: offset) }
        return true
    }

    /// The same for a FindCoordinator response (v0...v2; v3 is flexible).
    static func rewriteCoordinatorPort(_ frame: inout [UInt8], version: Int16, map: (Int32) -> Int32) -> Bool {
        guard (0...2).contains(version) else { return false }
        var reader = Reader(frame)
        guard reader.int32() != nil else { return false }  // correlation_id
        if version >= 1 { guard reader.int32() != nil else { return false } }  // throttle_time_ms
        guard reader.int16() != nil else { return false }  // error_code
        if version >= 1 { guard reader.skipNullableString() else { return false } }  // error_message
        guard reader.int32() != nil, reader.skipString() else { return false }  // node_id, host
        let offset = reader.offset
        guard reader.skip(4) else { return false }
        writeInt32(map(readInt32(frame, at: offset)), into: &frame, at: offset)
        return true
    }

    /// Big-endian reads that fail (nil/false) instead of running past the end.
    struct Reader {
        let bytes: [UInt8]
        var offset = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        mutating func skip(_ count: Int) -> Bool {
            guard count >= 0, offset + count <= bytes.count else { return false }
            offset += count
            return true
        }

        mutating func int16() -> Int16? {
            guard offset + 2 <= bytes.count else { return nil }
            defer { offset += 2 }
            return Int16(bitPattern: UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1]))
        }

        mutating func int8() -> Int8? {
            guard offset < bytes.count else { return nil }
            defer { offset += 1 }
            return Int8(bitPattern: bytes[offset])
        }

        mutating func int64() -> Int64? {
            guard offset + 8 <= bytes.count else { return nil }
            defer { offset += 8 }
            var value: UInt64 = 0
            for index in 0..<8 { value = value << 8 | UInt64(bytes[offset + index]) }
            return Int64(bitPattern: value)
        }

        /// A string: int16 length, then UTF-8 bytes.
        mutating func string() -> String? {
            guard let length = int16(), length >= 0, offset + Int(length) <= bytes.count else { return nil }
            defer { offset += Int(length) }
            return String(decoding: bytes[offset..<offset + Int(length)], as: UTF8.self)
        }

        /// Nullable bytes: int32 length (-1 = null, read as empty), then the bytes.
        mutating func nullableBytes() -> ArraySlice<UInt8>? {
            guard let length = int32(), length >= -1 else { return nil }
            if length <= 0 { return [] }
            guard offset + Int(length) <= bytes.count else { return nil }
            defer { offset += Int(length) }
            return bytes[offset..<offset + Int(length)]
        }

        mutating func int32() -> Int32? {
            guard offset + 4 <= bytes.count else { return nil }
            defer { offset += 4 }
            var value: UInt32 = 0
            for index in 0..<4 { value = value << 8 | UInt32(bytes[offset + index]) }
            return Int32(bitPattern: value)
        }

        /// A string: int16 length, then the bytes.
        mutating func skipString() -> Bool {
            guard let length = int16(), length >= 0 else { return false }
            return skip(Int(length))
        }

        /// An array of (topic name, `rest`) entries: the names, or nil when unreadable.
        mutating func topicNames(skippingRest rest: (inout Reader) -> Bool) -> Set<String>? {
            guard let count = int32(), count >= 0 else { return nil }
            var names = Set<String>()
            for _ in 0..<count {
                guard let name = string() else { return nil }
                names.insert(name)
                guard rest(&self) else { return nil }
            }
            return names
        }

        /// A nullable string: length -1 is null.
        mutating func skipNullableString() -> Bool {
            guard let length = int16() else { return false }
            return length < 0 ? length == -1 : skip(Int(length))
        }
    }
}
