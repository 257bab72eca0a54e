import Contracts
import Foundation
import Hummingbird
import Logging
import Migrations
import NIOCore
import PostgresNIO
import Prometheus
import ReadModels
import Redis
import ServiceLifecycle
import UnixSignals
import ServiceSupport

/// odds-service wired together: clients, read path, fan-out hub, HTTP/WS server, operations
/// server. `services` is in start order (dependencies first, the public edge last); the
/// ServiceGroup shuts them down in reverse (edge first).
struct OddsServiceApp: Sendable {
    let configuration: ServiceConfiguration
    let redis: RedisClient
    let postgres: PostgresClient
    let hub: FanOutHub
    let pump: BroadcastPump
    let metrics: ServiceMetrics
    let query: OddsQueryService
    let services: [any Service]
    let logger: Logger

    func serviceGroup(signals: [UnixSignal] = [.sigterm, .sigint]) -> ServiceGroup {
        var configuration = ServiceGroupConfiguration(services: services.map { .init(service: $0) },
                                                      gracefulShutdownSignals: signals, logger: logger)
        // Every socket is closed with 1001 at once; a dependency that never answers must not
        // keep an operator's SIGTERM waiting forever.
        configuration.maximumGracefulShutdownDuration = .seconds(20)
        return ServiceGroup(configuration: configuration)
    }
}

/// Builds the whole service from its configuration. `onHTTPRunning` / `onMetricsRunning` get the
/// bound ports (tests bind port 0).
func buildApplication(
    configuration: ServiceConfiguration,
    registry: PrometheusCollectorRegistry,
    logger: Logger,
    onHTTPRunning: @escaping @Sendable (Int) async -> Void = { _ in },
    onMetricsRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) throws -> OddsServiceApp {
    let metrics = ServiceMetrics()
    let redis = RedisClient(configuration: configuration.redis, logger: Logger(label: "odds-service.redis"))
    var pgConfiguration = try configuration.postgres.clientConfiguration()
    pgConfiguration.options.maximumConnections = 16
    pgConfiguration.options.connectTimeout = .seconds(2)
    let postgres = PostgresClient(configuration: pgConfiguration, backgroundLogger: Logger(label: "odds-service.postgres"))

    let redisReader = RedisOddsReader(client: redis, logger: logger)
    let postgresReader = PostgresOddsReadRepository(client: postgres, logger: logger)
    // Concurrent REST reads of single events share pipelined Redis round trips.
    let coalescedRedis = CoalescingOddsReader(store: redisReader, maxBatchesInFlight: configuration.redis.poolSize)
    let board = FeedStatusBoard(metrics: metrics)
    let hub = FanOutHub(limits: configuration.ws, metrics: metrics, board: board)

    var subscriberOptions = RedisSubscriber.Options()
    subscriberOptions.bufferCapacity = 8192
    subscriberOptions.maxBackoff = .seconds(2)
    subscriberOptions.healthCheckInterval = .seconds(5)
    // One subscription, two channels: applied odds and the platform's feed status changes.
    let subscriber = RedisSubscriber(configuration: configuration.redis,
                                     channels: [configuration.channel, RedisKeys.feedStatusChannel],
                                     options: subscriberOptions, logger: Logger(label: "odds-service.subscriber"))
    // Hot reads answered from memory, kept current by that same subscription.
    let mirror = configuration.readMirrorEvents > 0 ? LiveOddsMirror(link: subscriber, capacity: configuration.readMirrorEvents) : nil
    let query = OddsQueryService(redis: coalescedRedis, postgres: postgresReader, history: postgresReader,
                                 mirror: mirror, metrics: metrics, logger: logger)
    let pump = BroadcastPump(subscriber: subscriber, hub: hub, query: query, feedStatuses: redisReader,
                             oddsChannel: configuration.channel, metrics: metrics, logger: logger)
    let reloader = FeedStatusReloader(pump: pump, interval: configuration.feedStatusReload)
    let sweeper = ConnectionSweeper(hub: hub, heartbeat: configuration.ws.heartbeat, sendTimeout: configuration.ws.sendTimeout,
                                    pingInterval: configuration.ws.pingInterval)

    // Served self-contained: the schemas it refers to in files beside it are bundled in.
    var openAPIDocument: String?
    do {
        openAPIDocument = try OpenAPIBundle.load(path: configuration.openAPIPath)
    } catch {
        logger.warning("OpenAPI document not available; GET /openapi.yaml answers 404",
                       metadata: ["path": "\(configuration.openAPIPath)", "error": "\(error)"])
    }

    // HEAD is answered for every GET route (RFC 9110 §9.3.2); any other method of a known path
    // is 405 with Allow.
    let router = Router(options: .autoGenerateHeadEndpoints)
    let routes = RouteTable((OddsRESTController.routePaths + [LivePage.path, OddsWebSocketController.path]).map {
        (template: $0, methods: [.get, .head])
    })
    router.middlewares.add(JSONErrorMiddleware(logger: logger, routes: routes))
    let rest = OddsRESTController(query: query, board: board, metrics: metrics, openAPIDocument: openAPIDocument,
                                  maxEventsPerPage: configuration.maxEventsPerPage,
                                  defaultEventsPerPage: configuration.defaultEventsPerPage)
    rest.addRoutes(to: router)
    let serverName = "odds-service"
    let hotReads = mirror.map { HotReads(mirror: $0, controller: rest, serverName: serverName) }
    LivePage.addRoutes(to: router)

    let webSocket = OddsWebSocketController(hub: hub, query: query, limits: configuration.ws, metrics: metrics, logger: logger)
    webSocket.addHTTPFallback(to: router)

    let app = Application(
        router: router,
        server: .oddsService(webSocket: webSocket, hotReads: hotReads, idleTimeout: .seconds(120)),
        configuration: .init(address: .hostname(configuration.host, port: configuration.httpPort),
                             serverName: serverName, backlog: 4096),
        onServerRunning: { channel in await onHTTPRunning(channel.localAddress?.port ?? configuration.httpPort) },
        logger: logger)

    let readiness = [
        ReadinessCheck(name: "redis") { await redisReader.isReachable() },
        ReadinessCheck(name: "postgres") { await postgresReader.isReachable() },
        ReadinessCheck(name: "redis_subscription") { pump.subscribed.load(ordering: .relaxed) },
    ]
    let operationsRouter = OperationsServer.router(registry: registry, readiness: readiness)
    // Added after its routes, the middleware wraps only the router's not-found answer: another
    // method on /healthz, /readyz or /metrics is 405 with Allow, an unknown path a JSON 404.
    operationsRouter.middlewares.add(JSONErrorMiddleware(logger: logger, routes: RouteTable(
        ["/healthz", "/readyz", "/metrics"].map { (template: $0, methods: [.get]) })))
    let operations = Application(
        router: operationsRouter,
        configuration: .init(address: .hostname(configuration.host, port: configuration.metricsPort),
                             serverName: "odds-service-operations"),
        onServerRunning: { channel in await onMetricsRunning(channel.localAddress?.port ?? configuration.metricsPort) },
        logger: logger)

    return OddsServiceApp(
        configuration: configuration, redis: redis, postgres: postgres, hub: hub, pump: pump, metrics: metrics,
        query: query, services: [postgres, redis, pump, reloader, sweeper, operations, app], logger: logger)
}
