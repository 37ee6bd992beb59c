import Prometheus

extension PrometheusMetricsFactory {
    /// Prometheus behind swift-metrics, with latency buckets from a quarter of a millisecond (a
    /// token signature) to ten seconds, 500 ms among them: the latency alert's threshold.
    static func hsmd(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
            .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
        ]
        return factory
    }
}
