/// Everything one run measured: the JSON of `--output json`, and what the table shows.
struct BenchReport: Encodable, Sendable {
    struct Setup: Encodable, Sendable {
        var socket: String
        /// Where the direct baseline's throwaway token lived; nil when it was skipped.
        var directStateDirectory: String?
        /// Where the p11-kit peer's token lived; nil when it was skipped.
        var peerStateDirectory: String?
        var durationSeconds: Double?
        var requestsPerOperation: Int?
        var warmupSeconds: Double
        var cores: Int
        /// 1, 5 and 15-minute load averages when the run started.
        var loadAverage: [Double]
    }

    struct OperationResult: Encodable, Sendable {
        var id: String
        var title: String
        var socket: Measurement
        var direct: Measurement?
        /// Through `p11-kit server` and `p11-kit-client.so`.
        var peer: Measurement?
        /// Why the peer could not run the operation.
        var peerUnavailable: String?
        var openssl: OpenSSLSpeed.Result?

        var socketOverDirect: Double? { direct.flatMap { ratio(socket.opsPerSecond, $0.opsPerSecond) } }
        var socketOverPeer: Double? { peer.flatMap { ratio(socket.opsPerSecond, $0.opsPerSecond) } }
        var socketOverOpenSSL: Double? { openssl.flatMap { ratio(socket.opsPerSecond, $0.opsPerSecond) } }
        var directOverOpenSSL: Double? {
            guard let direct, let openssl else { return nil }
            return ratio(direct.opsPerSecond, openssl.opsPerSecond)
        }

        enum CodingKeys: String, CodingKey {
            case id, title, socket, direct, peer, peerUnavailable, openssl, socketOverDirect, socketOverPeer, socketOverOpenSSL, directOverOpenSSL
        }

        init(id: String, title: String, socket: Measurement) {
            (self.id, self.title, self.socket) = (id, title, socket)
        }

        /// The ratios are written out so readers of the JSON need not compute them.
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(title, forKey: .title)
            try container.encode(socket, forKey: .socket)
            try container.encodeIfPresent(direct, forKey: .direct)
            try container.encodeIfPresent(peer, forKey: .peer)
            try container.encodeIfPresent(peerUnavailable, forKey: .peerUnavailable)
            try container.encodeIfPresent(openssl, forKey: .openssl)
            try container.encodeIfPresent(socketOverDirect, forKey: .socketOverDirect)
            try container.encodeIfPresent(socketOverPeer, forKey: .socketOverPeer)
            try container.encodeIfPresent(socketOverOpenSSL, forKey: .socketOverOpenSSL)
            try container.encodeIfPresent(directOverOpenSSL, forKey: .directOverOpenSSL)
        }
    }

    struct Run: Encodable, Sendable {
        var concurrency: Int
        var operations: [OperationResult]
    }

    var setup: Setup
    var runs: [Run] = []
    /// Keys the run created but could not delete and purge.
    var cleanupFailures: [String] = []
}

private func ratio(_ numerator: Double, _ denominator: Double) -> Double? {
    denominator > 0 ? numerator / denominator : nil
}
