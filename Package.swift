// swift-tools-version: 6.1
import PackageDescription

let strictSwift: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "odds-pipeline",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "kafka-dev-broker", targets: ["KafkaDevBroker"]),
        .executable(name: "migrate", targets: ["Migrate"]),
        .executable(name: "supplier-simulator", targets: ["SupplierSimulator"]),
        .executable(name: "odds-ingest", targets: ["OddsIngest"]),
        .executable(name: "odds-processor", targets: ["OddsProcessor"]),
        .executable(name: "odds-service", targets: ["OddsService"]),
        .executable(name: "odds-watch", targets: ["OddsWatch"]),
        .executable(name: "ws-bench", targets: ["WSBench"]),
        .executable(name: "kafka-bench", targets: ["KafkaBench"]),
        .executable(name: "redis-bench", targets: ["RedisBench"]),
        .library(name: "Contracts", targets: ["Contracts"]),
        .library(name: "Kafka", targets: ["Kafka"]),
        .library(name: "Redis", targets: ["Redis"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.20.0"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.2.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.2.0"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket", from: "1.6.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.25.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.27.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
    ],
    targets: [
        // C modules: only the Kafka and Redis layers (and the dev broker) import these.
        .systemLibrary(
            name: "CRDKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        // hiredis' pkg-config file adds -D_FILE_OFFSET_BITS=64, which SwiftPM refuses; its
        // headers live in the default include path, so the module map alone is enough.
        .systemLibrary(
            name: "CHiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),

        // Wire contracts: pure value types and validation, no I/O.
        .target(name: "Contracts", swiftSettings: strictSwift),

        .target(
            name: "Kafka",
            dependencies: [
                "CRDKafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strictSwift
        ),
        .target(
            name: "Redis",
            dependencies: [
                "CHiredis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strictSwift
        ),
        .target(
            name: "ServiceSupport",
            dependencies: [
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSwift
        ),
        .target(
            name: "Migrations",
            dependencies: [
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),

        .executableTarget(
            name: "KafkaDevBroker",
            dependencies: [
                "CRDKafka",
                "SocketSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "Migrate",
            dependencies: [
                "Migrations",
                "ServiceSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "WSBench",
            dependencies: [
                "Contracts",
                "Redis",
                "SocketSupport",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "OddsWatch",
            dependencies: [
                "Contracts",
                "ServiceSupport",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "KafkaBench",
            dependencies: [
                "Kafka",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "RedisBench",
            dependencies: [
                "Redis",
                "SocketSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strictSwift
        ),

        .executableTarget(
            name: "SupplierSimulator",
            dependencies: [
                "Contracts",
                "ServiceSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "OddsIngest",
            dependencies: [
                "Contracts",
                "Kafka",
                "ServiceSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "WSCore", package: "swift-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),

        // Read models shared by the processor (writes) and odds-service (reads).
        .target(
            name: "ReadModels",
            dependencies: [
                "Contracts",
                "Redis",
                "Migrations",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "OddsProcessor",
            dependencies: [
                "Contracts",
                "Kafka",
                "Redis",
                "ReadModels",
                "Migrations",
                "ServiceSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "OddsService",
            dependencies: [
                "Contracts",
                "Redis",
                "ReadModels",
                "Migrations",
                "ServiceSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),

        // Blocking IPv4 sockets for tools and tests (load clients, port probes, raw HTTP).
        .target(name: "SocketSupport", swiftSettings: strictSwift),

        // Shared helpers for integration tests: locating infrastructure, starting real servers.
        .target(
            name: "IntegrationSupport",
            dependencies: [
                "Contracts",
                "Kafka",
                "Migrations",
                "ServiceSupport",
                "SocketSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/IntegrationSupport",
            swiftSettings: strictSwift
        ),
        .testTarget(name: "ContractsTests", dependencies: ["Contracts"], swiftSettings: strictSwift),
        .testTarget(name: "OddsWatchTests", dependencies: ["OddsWatch", "Contracts"], swiftSettings: strictSwift),
        .testTarget(
            name: "KafkaTests",
            dependencies: ["Kafka", "IntegrationSupport", "KafkaDevBroker"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "RedisTests",
            dependencies: ["Redis", "IntegrationSupport"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "MigrationsTests",
            dependencies: ["Migrations", "IntegrationSupport", .product(name: "PostgresNIO", package: "postgres-nio")],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SupplierSimulatorTests",
            dependencies: ["SupplierSimulator", "Contracts", "IntegrationSupport", "SocketSupport", "ServiceSupport",
                           .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                           .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio")],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "OddsIngestTests",
            dependencies: ["OddsIngest", "Contracts", "Kafka", "IntegrationSupport", "ServiceSupport", "SocketSupport",
                           .product(name: "WSCore", package: "swift-websocket"),
                           .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "ReadModelsTests",
            dependencies: ["ReadModels", "Contracts", "Redis", "Migrations", "IntegrationSupport",
                           .product(name: "PostgresNIO", package: "postgres-nio")],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "OddsProcessorTests",
            dependencies: ["OddsProcessor", "ReadModels", "Contracts", "Kafka", "Redis", "Migrations", "IntegrationSupport", "ServiceSupport",
                           .product(name: "PostgresNIO", package: "postgres-nio")],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "OddsServiceTests",
            dependencies: ["OddsService", "ReadModels", "Contracts", "Redis", "Migrations", "IntegrationSupport", "SocketSupport",
                           .product(name: "PostgresNIO", package: "postgres-nio"),
                           .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                           .product(name: "HummingbirdTesting", package: "hummingbird")],
            swiftSettings: strictSwift
        ),
        // The four real executables against real Redis, PostgreSQL and a dev broker, checked
        // against the supplier's journal.
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["Contracts", "Kafka", "Redis", "IntegrationSupport", "SupplierSimulator",
                           .product(name: "PostgresNIO", package: "postgres-nio"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "ServiceSupportTests",
            dependencies: ["ServiceSupport", .product(name: "Hummingbird", package: "hummingbird"), .product(name: "HummingbirdTesting", package: "hummingbird")],
            swiftSettings: strictSwift
        ),
    ]
)
