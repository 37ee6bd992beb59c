import Foundation
import HSMClient
import Logging
import NIOPosix
import XCTest

@testable import VaultServer

/// The HTTP layer on a real Unix socket, with routes of the test's own.
final class HTTPServerTests: XCTestCase {
    private var socketPath: String!
    private var group: MultiThreadedEventLoopGroup!
    private var pool: NIOThreadPool!

    override func setUp() {
        socketPath = FileManager.default.temporaryDirectory.appendingPathComponent("srv-\(UUID().uuidString.prefix(8)).sock").path
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
    }

    override func tearDown() {
        try? group.syncShutdownGracefully()
        try? pool.syncShutdownGracefully()
        unlink(socketPath)
    }

    private func server(_ configure: (inout Router) -> Void, maximumBodySize: Int = 1 << 20) throws -> HTTPServer {
        var router = Router()
        configure(&router)
        var configuration = HTTPServer.Configuration(listener: .unixSocket(path: socketPath, group: nil))
        configuration.maximumBodySize = maximumBodySize
        return try HTTPServer(configuration: configuration, router: router, group: group, blockingPool: pool, logger: Logger(label: "test"))
    }

    func testShutdownAnswersTheRequestsInFlightAndStopsAccepting() throws {
        let server = try server { router in
            router.add(.POST, "/slow", .blocking { _ in
                Thread.sleep(forTimeInterval: 1)
                return .json(["done": true])
            })
        }
        let client = HSMClient(socketPath: socketPath)
        let answered = expectation(description: "the slow request is answered")
        let status = Counter()
        DispatchQueue.global().async {
            if let response = try? client.send(.POST, "/slow", body: Array("{}".utf8)), response.status == 200 {
                status.increment()
            }
            answered.fulfill()
        }
        Thread.sleep(forTimeInterval: 0.3)
        let started = Date()
        server.shutdown()
        XCTAssertGreaterThan(Date().timeIntervalSince(started), 0.4, "shutdown waited for the request in flight")
        wait(for: [answered], timeout: 5)
        XCTAssertEqual(status.value, 1, "the request in flight got its 200")
        XCTAssertFalse(FileManager.default.fileExists(atPath: socketPath), "the socket is removed")
        XCTAssertThrowsError(try client.send(.GET, "/slow"), "no new connection after shutdown")
    }

    func testErrorsHaveAzureShapeAndEveryResponseARequestID() throws {
        let server = try server({ router in
            router.add(.GET, "/thing", .immediate { _ in .json(["ok": true]) })
            router.add(.POST, "/thing", .blocking { _ in throw CocoaError(.fileNoSuchFile) })
        }, maximumBodySize: 2048)
        defer { server.shutdown() }
        let client = HSMClient(socketPath: socketPath)

        let ok = try client.send(.GET, "//thing?api-version=7.5")
        XCTAssertEqual(ok.status, 200, "repeated slashes collapse, the query is not part of the path")
        XCTAssertNotNil(UUID(uuidString: ok.header("x-ms-request-id") ?? ""))

        for (response, status, code) in [
            (try client.send(.GET, "/nothing"), 404, "NotFound"),
            (try client.send(.DELETE, "/thing"), 405, "MethodNotAllowed"),
            (try client.send(.GET, "/thing", body: [UInt8](repeating: 0x41, count: 5000)), 413, "RequestTooLarge"),
            (try client.send(.POST, "/thing", body: Array("{}".utf8)), 500, "InternalError"),
        ] {
            XCTAssertEqual(response.status, status)
            let body = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: [String: String]]
            XCTAssertEqual(body?["error"]?["code"], code)
            XCTAssertFalse(body?["error"]?["message"]?.isEmpty ?? true)
            XCTAssertNotNil(response.header("x-ms-request-id"))
        }
        let internalError = try client.send(.POST, "/thing", body: Array("{}".utf8))
        XCTAssertFalse(String(decoding: internalError.body, as: UTF8.self).contains("fileNoSuchFile"), "no internals leak to the caller")
    }

    func testAStaleSocketIsReplacedButALiveOneIsNot() throws {
        let first = try server { _ in }
        XCTAssertThrowsError(try server { _ in }, "a socket another server still serves on is left alone") { error in
            XCTAssertTrue("\(error)".contains("another process is serving on"), "\(error)")
        }
        first.shutdown()
        // A crashed daemon leaves its socket file behind: a listening socket nobody serves.
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: socketPath.utf8) }
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(stale, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        close(stale)
        XCTAssertTrue(FileManager.default.fileExists(atPath: socketPath))
        let second = try server { router in router.add(.GET, "/up", .immediate { _ in .json(["up": true]) }) }
        defer { second.shutdown() }
        XCTAssertEqual(try HSMClient(socketPath: socketPath).send(.GET, "/up").status, 200)

        let regular = FileManager.default.temporaryDirectory.appendingPathComponent("regular-\(UUID().uuidString)")
        try Data("keep me".utf8).write(to: regular)
        defer { try? FileManager.default.removeItem(at: regular) }
        socketPath = regular.path
        XCTAssertThrowsError(try server { _ in }, "a file that is not a socket is never replaced")
        XCTAssertEqual(try String(contentsOf: regular, encoding: .utf8), "keep me")
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    func increment() {
        lock.withLock { count += 1 }
    }

    var value: Int { lock.withLock { count } }
}
