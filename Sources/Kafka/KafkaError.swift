import CRDKafka

/// An error reported by librdkafka (or by this layer around it).
///
/// `code` is librdkafka's `rd_kafka_resp_err_t` raw value: negative values are client-internal
/// conditions (`_QUEUE_FULL`, `_TRANSPORT`, ...), positive values are Kafka protocol errors.
public struct KafkaError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        init(_ error: rd_kafka_resp_err_t) { self.rawValue = error.rawValue }

        /// librdkafka's symbolic name, e.g. `_QUEUE_FULL` or `REBALANCE_IN_PROGRESS`.
        public var name: String { String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(rawValue: rawValue))) }
        public var description: String { name }

        public static let noError = Code(RD_KAFKA_RESP_ERR_NO_ERROR)
        public static let queueFull = Code(RD_KAFKA_RESP_ERR__QUEUE_FULL)
        public static let transport = Code(RD_KAFKA_RESP_ERR__TRANSPORT)
        public static let timedOut = Code(RD_KAFKA_RESP_ERR__TIMED_OUT)
        public static let messageTimedOut = Code(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)
        public static let allBrokersDown = Code(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        public static let fatal = Code(RD_KAFKA_RESP_ERR__FATAL)
        public static let purgedQueue = Code(RD_KAFKA_RESP_ERR__PURGE_QUEUE)
        public static let purgedInFlight = Code(RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        public static let unsupportedFeature = Code(RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE)
        public static let invalidArgument = Code(RD_KAFKA_RESP_ERR__INVALID_ARG)
        public static let state = Code(RD_KAFKA_RESP_ERR__STATE)
        public static let destroyed = Code(RD_KAFKA_RESP_ERR__DESTROY)
        public static let unknownTopicOrPartition = Code(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        public static let topicAlreadyExists = Code(RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        public static let rebalanceInProgress = Code(RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS)
        public static let notCoordinator = Code(RD_KAFKA_RESP_ERR_NOT_COORDINATOR)
        public static let illegalGeneration = Code(RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION)
        public static let unknownMemberID = Code(RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID)

        /// Conditions that clear up on their own (broker restarts, coordinator moves, a
        /// rebalance finishing, a full local queue draining): the operation is worth retrying.
        public var isRetriable: Bool { Self.retriable.contains(self) }

        static let retriable: Set<Code> = [
            Code(RD_KAFKA_RESP_ERR__QUEUE_FULL),
            Code(RD_KAFKA_RESP_ERR__TRANSPORT),
            Code(RD_KAFKA_RESP_ERR__TIMED_OUT),
            Code(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT),
            Code(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN),
            Code(RD_KAFKA_RESP_ERR__WAIT_COORD),
            Code(RD_KAFKA_RESP_ERR__RESOLVE),
            Code(RD_KAFKA_RESP_ERR__IN_PROGRESS),
            Code(RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS),
            Code(RD_KAFKA_RESP_ERR_NOT_COORDINATOR),
            Code(RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE),
            Code(RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS),
            Code(RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT),
            Code(RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION),
            Code(RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE),
            Code(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION),
            Code(RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS),
            Code(RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND),
            Code(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART),
        ]
    }

    /// librdkafka's error code.
    public let code: Code
    /// librdkafka's human readable text for the code (or a more specific message it gave).
    public let message: String
    /// What this layer was doing, e.g. "commit offsets" or "produce to odds_updates".
    public let context: String
    /// librdkafka marked the client unusable (idempotence violated, fenced, ...): recreate it.
    public let isFatal: Bool
    let retriableOverride: Bool?

    public init(code: Code, message: String? = nil, context: String, isFatal: Bool = false, isRetriable: Bool? = nil) {
        self.code = code
        self.message = message ?? String(cString: rd_kafka_err2str(rd_kafka_resp_err_t(rawValue: code.rawValue)))
        self.context = context
        self.isFatal = isFatal
        self.retriableOverride = isRetriable
    }

    init(_ error: rd_kafka_resp_err_t, context: String, message: String? = nil) {
        self.init(code: Code(error), message: message, context: context)
    }

    /// Takes over (and destroys) an `rd_kafka_error_t`.
    init(consuming error: OpaquePointer, context: String) {
        defer { rd_kafka_error_destroy(error) }
        self.init(
            code: Code(rd_kafka_error_code(error)),
            message: String(cString: rd_kafka_error_string(error)),
            context: context,
            isFatal: rd_kafka_error_is_fatal(error) != 0,
            isRetriable: rd_kafka_error_is_retriable(error) != 0 ? true : nil
        )
    }

    /// librdkafka's symbolic name of `code`.
    public var name: String { code.name }
    /// Worth retrying; never true for a fatal error.
    public var isRetriable: Bool { !isFatal && (retriableOverride ?? code.isRetriable) }

    public var description: String {
        "\(context): \(name) (\(code.rawValue)): \(message)\(isFatal ? " [fatal]" : "")"
    }

    static func state(_ message: String, context: String) -> KafkaError {
        KafkaError(code: .state, message: message, context: context, isRetriable: false)
    }

    static func invalidArgument(_ message: String, context: String) -> KafkaError {
        KafkaError(code: .invalidArgument, message: message, context: context, isRetriable: false)
    }
}
