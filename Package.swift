// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "hsmd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "hsmd", targets: ["hsmd"]),
        .executable(name: "hsmctl", targets: ["hsmctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/attaswift/BigInt.git", from: "6.0.1"),
    ],
    targets: [
        // Layer 0: the system's pkcs11.h and dlopen, nothing else.
        .systemLibrary(name: "CPKCS11", path: "Include/CPKCS11"),
        // prctl for the daemon's process hardening (variadic in C, so Swift needs a wrapper).
        .systemLibrary(name: "CProcessHardening", path: "Include/CProcessHardening"),
        // Layer 1: a typed PKCS#11 wrapper; no C pointer escapes it.
        .target(name: "PKCS11", dependencies: ["CPKCS11"]),
        // Layer 2: the vault core: provisioning, hsmd's keys in the token, Azure algorithms.
        .target(
            name: "Vault",
            dependencies: [
                "PKCS11",
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "BigInt", package: "BigInt"),
            ]
        ),
        // The tamper-evident audit log: hash-chained JSON lines, shared by hsmd and hsmctl.
        .target(name: "Audit", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // Layer 3: HTTP/1.1 on the Unix socket.
        .target(
            name: "VaultServer",
            dependencies: [
                "Vault", "Audit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The client side of the socket, shared by hsmctl and the tests.
        .target(
            name: "HSMClient",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // Layer 4: executables.
        .executableTarget(
            name: "hsmd",
            dependencies: [
                "Vault", "VaultServer", "Audit", "CProcessHardening",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .executableTarget(
            name: "hsmctl",
            dependencies: [
                "HSMClient", "Audit",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        // Load generator and baselines for docs/BENCHMARKS.md: the socket, hsmd's token layer alone, p11-kit, openssl speed.
        .executableTarget(
            name: "hsmd-bench",
            dependencies: [
                "Vault", "PKCS11",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "PKCS11Tests", dependencies: ["PKCS11"]),
        .testTarget(
            name: "VaultTests",
            dependencies: ["Vault", "PKCS11", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(name: "AuditTests", dependencies: ["Audit"]),
        .testTarget(
            name: "VaultServerTests",
            dependencies: [
                "VaultServer", "Vault", "HSMClient",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Drives the built hsmd and hsmctl executables as separate processes: `swift build` first.
        .testTarget(name: "DaemonTests", dependencies: ["HSMClient"]),
    ],
    swiftLanguageModes: [.v6]
)
