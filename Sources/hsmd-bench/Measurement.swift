/// Throughput and latency percentiles of one operation through one path, from every worker's samples.
struct Measurement: Encodable, Sendable {
    var operations: Int
    var seconds: Double
    var opsPerSecond: Double
    var p50Microseconds: Double
    var p99Microseconds: Double
    var p999Microseconds: Double
    var maxMicroseconds: Double
    var errors: Int
    var firstError: String?

    init(_ workers: [WorkerSamples], plan: RunPlan) {
        var latencies = workers.flatMap(\.latencies)
        latencies.sort()
        let end = workers.map(\.lastCompletion).max() ?? plan.measuredFrom
        operations = latencies.count
        seconds = Double(end > plan.measuredFrom ? end - plan.measuredFrom : 0) / 1e9
        opsPerSecond = seconds > 0 ? Double(operations) / seconds : 0
        p50Microseconds = Self.percentile(0.50, of: latencies)
        p99Microseconds = Self.percentile(0.99, of: latencies)
        p999Microseconds = Self.percentile(0.999, of: latencies)
        maxMicroseconds = Double(latencies.last ?? 0) / 1e3
        errors = workers.map(\.errors).reduce(0, +)
        firstError = workers.lazy.compactMap(\.firstError).first
    }

    /// Nearest-rank percentile of sorted nanosecond samples, in microseconds.
    private static func percentile(_ fraction: Double, of sorted: [UInt64]) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((fraction * Double(sorted.count)).rounded(.up))
        return Double(sorted[min(max(rank, 1), sorted.count) - 1]) / 1e3
    }
}
