#if canImport(Glibc)
import Glibc
#endif

/// The monotonic clock every latency is read from, in nanoseconds.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// When one measurement of one operation starts counting and when its workers stop. Shared by
/// the socket and direct runners, so both measure the same window the same way.
struct RunPlan: Sendable {
    /// Completions before this instant are warm-up and not counted.
    let measuredFrom: UInt64
    /// No request starts at or after this instant; nil in count mode.
    let stopAt: UInt64?
    /// Requests each worker sends after warm-up; nil in time mode.
    let requestsPerWorker: Int?

    static func timed(warmupSeconds: Double, durationSeconds: Double) -> RunPlan {
        let measuredFrom = monotonicNanoseconds() + UInt64(warmupSeconds * 1e9)
        return RunPlan(measuredFrom: measuredFrom, stopAt: measuredFrom + UInt64(durationSeconds * 1e9), requestsPerWorker: nil)
    }

    static func counted(warmupSeconds: Double, requests: Int, workers: Int) -> RunPlan {
        RunPlan(
            measuredFrom: monotonicNanoseconds() + UInt64(warmupSeconds * 1e9), stopAt: nil,
            requestsPerWorker: (requests + workers - 1) / workers)
    }

    /// Whether a worker that has counted `measured` completions sends another request.
    func continues(now: UInt64, measured: Int) -> Bool {
        if let stopAt { return now < stopAt }
        return measured < requestsPerWorker ?? 0
    }
}

/// What one worker saw inside the measured window.
struct WorkerSamples: Sendable {
    /// Latency of each counted operation, in nanoseconds.
    var latencies: [UInt64] = []
    var errors = 0
    var firstError: String?
    /// When the last counted operation completed.
    var lastCompletion: UInt64 = 0

    init(expectedCount: Int) {
        latencies.reserveCapacity(expectedCount)
    }

    mutating func record(sentAt: UInt64, completedAt: UInt64, plan: RunPlan) {
        guard completedAt >= plan.measuredFrom else { return }
        latencies.append(completedAt - sentAt)
        lastCompletion = completedAt
    }

    mutating func recordError(_ description: String) {
        errors += 1
        if firstError == nil { firstError = String(description.prefix(300)) }
    }
}
