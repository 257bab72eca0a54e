/// Names shared by every component: Kafka topics, Redis keys and channels, consumer groups.
public enum Topics {
    public static let oddsUpdates = "odds_updates"
    public static let oddsUpdatesDeadLetter = "odds_updates_dlq"
}

public enum RedisKeys {
    public static let broadcastChannel = "odds_updates_broadcast"
    /// Hash of the current odds of one event: field = market, value = OddsUpdate JSON.
    public static func currentOdds(eventId: String) -> String { "odds:current:\(eventId)" }
}

public enum ConsumerGroups {
    public static let processor = "odds-processor"
}

/// Kafka header names carried on dead-letter messages.
public enum DeadLetterHeaders {
    public static let error = "error"
    public static let source = "source"
    public static let originalTopic = "original_topic"
    public static let originalPartition = "original_partition"
    public static let originalOffset = "original_offset"
}
