import CRDKafka
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Hooks librdkafka calls back into. Retained for the whole life of the `rd_kafka_t` and
/// reached from the C callbacks through the handle's opaque pointer. Closures run on whatever
/// thread librdkafka serves the event on (our poll thread, or one of its own for logs), so
/// everything they touch must be thread-safe.
final class RDKafkaCallbacks: Sendable {
    typealias DeliveryHandler = @Sendable (UnsafePointer<rd_kafka_message_t>) -> Void
    typealias RebalanceHandler = @Sendable (OpaquePointer, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> Void
    typealias CommitHandler = @Sendable (rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> Void
    typealias ErrorHandler = @Sendable (KafkaError) -> Void

    let logger: Logger
    let onDelivery: DeliveryHandler?
    let onRebalance: RebalanceHandler?
    let onCommit: CommitHandler?
    let onError: ErrorHandler?

    init(logger: Logger, onDelivery: DeliveryHandler? = nil, onRebalance: RebalanceHandler? = nil, onCommit: CommitHandler? = nil, onError: ErrorHandler? = nil) {
        self.logger = logger
        self.onDelivery = onDelivery
        self.onRebalance = onRebalance
        self.onCommit = onCommit
        self.onError = onError
    }

    static func from(_ opaque: UnsafeMutableRawPointer?) -> RDKafkaCallbacks? {
        guard let opaque else { return nil }
        return Unmanaged<RDKafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue()
    }

    /// syslog(3) levels, as librdkafka uses them, mapped onto swift-log.
    static func logLevel(syslog level: Int32) -> Logger.Level {
        switch level {
        case ...2: return .critical
        case 3: return .error
        case 4: return .warning
        case 5: return .notice
        case 6: return .info
        default: return .debug
        }
    }
}

/// Owns an `rd_kafka_t` and the callbacks it was created with; destroying the handle (which
/// joins librdkafka's threads) happens in `deinit`, after which no callback can run, so the
/// callbacks object is released last.
final class RDKafkaClient: @unchecked Sendable {
    let handle: OpaquePointer
    let callbacks: RDKafkaCallbacks
    let name: String
    private let retainedCallbacks: Unmanaged<RDKafkaCallbacks>
    /// Producer topic handles by name, created on first use and kept for the client's life
    /// (librdkafka's own lookup by name takes a lock and a refcount on every produce).
    private let topicHandles = Mutex<[String: TopicHandle]>([:])

    struct TopicHandle: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    /// For consumers: the group's message queue, which (after rd_kafka_poll_set_consumer) also
    /// carries rebalance, commit and error events.
    let consumerQueue: OpaquePointer?

    init(type: rd_kafka_type_t, properties: [String: String], callbacks: RDKafkaCallbacks) throws {
        let configuration = try Self.makeConfiguration(properties)
        let retained = Unmanaged.passRetained(callbacks)
        rd_kafka_conf_set_opaque(configuration, retained.toOpaque())

        // librdkafka logs from its own threads; swift-log's Logger is thread-safe.
        rd_kafka_conf_set_log_cb(configuration) { rk, level, facility, text in
            guard let rk, let callbacks = RDKafkaCallbacks.from(rd_kafka_opaque(rk)) else { return }
            let swiftLevel = RDKafkaCallbacks.logLevel(syslog: level)
            guard callbacks.logger.logLevel <= swiftLevel else { return }
            let facilityName = facility.map { String(cString: $0) } ?? "-"
            let message = text.map { String(cString: $0) } ?? ""
            callbacks.logger.log(
                level: swiftLevel,
                "\(message)",
                metadata: ["librdkafka.facility": "\(facilityName)", "librdkafka.client": "\(String(cString: rd_kafka_name(rk)))"]
            )
        }
        rd_kafka_conf_set_error_cb(configuration) { rk, code, reason, opaque in
            guard let callbacks = RDKafkaCallbacks.from(opaque) else { return }
            var error = KafkaError(
                code: KafkaError.Code(rawValue: code),
                message: reason.map { String(cString: $0) },
                context: "client error"
            )
            if code == RD_KAFKA_RESP_ERR__FATAL.rawValue, let rk {
                // The real cause of a fatal error has to be fetched separately.
                var text = [CChar](repeating: 0, count: 512)
                let underlying = rd_kafka_fatal_error(rk, &text, text.count)
                error = KafkaError(
                    code: KafkaError.Code(underlying),
                    message: String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
                    context: "fatal client error",
                    isFatal: true
                )
            }
            callbacks.onError?(error)
        }
        if callbacks.onDelivery != nil {
            rd_kafka_conf_set_dr_msg_cb(configuration) { _, message, opaque in
                guard let message, let callbacks = RDKafkaCallbacks.from(opaque) else { return }
                callbacks.onDelivery?(message)
            }
        }
        if callbacks.onRebalance != nil {
            rd_kafka_conf_set_rebalance_cb(configuration) { rk, code, partitions, opaque in
                guard let rk, let callbacks = RDKafkaCallbacks.from(opaque) else { return }
                callbacks.onRebalance?(rk, code, partitions)
            }
        }
        if callbacks.onCommit != nil {
            rd_kafka_conf_set_offset_commit_cb(configuration) { _, code, offsets, opaque in
                guard let callbacks = RDKafkaCallbacks.from(opaque) else { return }
                callbacks.onCommit?(code, offsets)
            }
        }

        var errorText = [CChar](repeating: 0, count: 512)
        // On success rd_kafka_new takes ownership of the configuration.
        guard let handle = rd_kafka_new(type, configuration, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(configuration)
            retained.release()
            throw KafkaError.invalidArgument(Self.string(errorText), context: "create librdkafka client")
        }
        self.handle = handle
        self.callbacks = callbacks
        self.retainedCallbacks = retained
        self.name = String(cString: rd_kafka_name(handle))
        if type == RD_KAFKA_CONSUMER {
            // One queue to serve: messages and callbacks come out of the same poll call.
            rd_kafka_poll_set_consumer(handle)
            consumerQueue = rd_kafka_queue_get_consumer(handle)
        } else {
            consumerQueue = nil
        }
    }

    deinit {
        for topic in topicHandles.withLock({ $0.values }) {
            rd_kafka_topic_destroy(topic.pointer)
        }
        if let consumerQueue { rd_kafka_queue_destroy(consumerQueue) }
        rd_kafka_destroy(handle)
        retainedCallbacks.release()
    }

    func topicHandle(_ name: String) throws -> OpaquePointer {
        if let existing = topicHandles.withLock({ $0[name] }) { return existing.pointer }
        guard let created = rd_kafka_topic_new(handle, name, nil) else {
            throw KafkaError(rd_kafka_last_error(), context: "create topic handle for \(name)")
        }
        let winner: TopicHandle = topicHandles.withLock { handles in
            if let existing = handles[name] { return existing }
            handles[name] = TopicHandle(pointer: created)
            return TopicHandle(pointer: created)
        }
        if winner.pointer != created { rd_kafka_topic_destroy(created) }
        return winner.pointer
    }

    static func makeConfiguration(_ properties: [String: String]) throws -> OpaquePointer {
        guard let configuration = rd_kafka_conf_new() else {
            throw KafkaError.state("out of memory", context: "create librdkafka configuration")
        }
        var errorText = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(configuration, key, value, &errorText, errorText.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(configuration)
                throw KafkaError.invalidArgument(Self.string(errorText), context: "configuration property \(key)=\(value)")
            }
        }
        return configuration
    }

    static func string(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// librdkafka's current fatal error, if the client has one.
    func fatalError(context: String) -> KafkaError? {
        var text = [CChar](repeating: 0, count: 512)
        let code = rd_kafka_fatal_error(handle, &text, text.count)
        guard code != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return KafkaError(code: KafkaError.Code(code), message: Self.string(text), context: context, isFatal: true)
    }
}

/// Conversions between Swift values and `rd_kafka_topic_partition_list_t`.
enum PartitionList {
    typealias Pointer = UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    static func make(_ positions: some Collection<TopicPartitionOffset>) -> Pointer {
        let list = rd_kafka_topic_partition_list_new(Int32(clamping: positions.count))!
        for position in positions {
            let element = rd_kafka_topic_partition_list_add(list, position.topic, position.partition)!
            element.pointee.offset = position.offset
        }
        return list
    }

    static func make(_ partitions: some Collection<TopicPartition>) -> Pointer {
        let list = rd_kafka_topic_partition_list_new(Int32(clamping: partitions.count))!
        for partition in partitions {
            _ = rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition)
        }
        return list
    }

    static func forEach(_ list: Pointer?, _ body: (rd_kafka_topic_partition_t) -> Void) {
        guard let list, let elements = list.pointee.elems else { return }
        for index in 0..<Int(list.pointee.cnt) {
            body(elements[index])
        }
    }

    static func partitions(_ list: Pointer?) -> [TopicPartition] {
        var result: [TopicPartition] = []
        forEach(list) { result.append(TopicPartition(topic: String(cString: $0.topic), partition: $0.partition)) }
        return result
    }

    static func positions(_ list: Pointer?) -> [(position: TopicPartitionOffset, error: rd_kafka_resp_err_t)] {
        var result: [(TopicPartitionOffset, rd_kafka_resp_err_t)] = []
        forEach(list) {
            result.append((TopicPartitionOffset(topic: String(cString: $0.topic), partition: $0.partition, offset: $0.offset), $0.err))
        }
        return result
    }
}

/// Topic names by librdkafka topic handle, so reports and messages do not allocate a new String
/// per message.
final class TopicNameCache: Sendable {
    private let names = Mutex<[UInt: String]>([:])

    func name(of topic: OpaquePointer?) -> String {
        guard let topic, let cName = rd_kafka_topic_name(topic) else { return "" }
        let key = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(topic)))
        // Verify the hit: a pointer could be reused after librdkafka drops an unused topic.
        if let name = names.withLock({ $0[key] }), name.withCString({ strcmp($0, cName) == 0 }) { return name }
        let name = String(cString: cName)
        names.withLock { $0[key] = name }
        return name
    }
}
