/// Names shared by every component: Kafka topics, Redis keys and channels, consumer groups.
public enum Topics {
    public static let oddsUpdates = "odds_updates"
    public static let oddsUpdatesDeadLetter = "odds_updates_dlq"
    /// odds-ingest's feed heartbeats (`FeedHeartbeat`), key = feed id.
    public static let feedStatus = "odds_feed_status"
}

public enum RedisKeys {
    public static let broadcastChannel = "odds_updates_broadcast"
    /// Hash of the current odds of one event: field = market, value = OddsUpdate JSON.
    public static func currentOdds(eventId: String) -> String { "odds:current:\(eventId)" }
    /// Hash of the platform status overlay: field = feed id, value = `FeedStatus` JSON.
    public static let feedStatus = "odds:feed_status"
    /// Channel carrying every change of a `FeedStatus` (the same JSON).
    public static let feedStatusChannel = "odds_feed_status_broadcast"
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

/// Kafka header names odds-ingest sets on every message that came from a readable feed frame
/// (odds-feed/2): where the frame was in the supplier's stream, and how far the topics are
/// known to be complete.
public enum FeedHeaders {
    /// The supplier's epoch (decimal).
    public static let epoch = "feed-epoch"
    /// The stream frame's seq (decimal); stream frames only.
    public static let seq = "feed-seq"
    /// The snapshot's position seq (decimal); snapshot frames only.
    public static let snapshot = "feed-snapshot"
    /// `E:N`: whenever this message is in Kafka, so is every stream frame of epoch E up to seq N
    /// (itself, or a complete snapshot taken after it). A restarted ingest resumes after the
    /// greatest of these.
    public static let resumeAfter = "feed-resume-after"
}
