// swift-tools-version: 6.1
// Stox: a SIP/SIMPLE <-> XMPP federation gateway.
// Module boundaries follow Docs/Architecture.md: pure cores (XMLCore, SIPCore, XMPPCore) import
// nothing from NIO but ByteBuffer; only the shells touch sockets, clocks or storage.
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Stox",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "stox", targets: ["stox"]),
        .executable(name: "stox-bench", targets: ["stox-bench"]),
        .library(name: "SIPCore", targets: ["SIPCore"]),
        .library(name: "SIPEdge", targets: ["SIPEdge"]),
        .library(name: "XMPPCore", targets: ["XMPPCore"]),
        .library(name: "XMLCore", targets: ["XMLCore"]),
        .library(name: "Interworking", targets: ["Interworking"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        // Latency histograms in stox-bench (p50/p99/p99.9 without keeping every sample).
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        // expat, the streaming XML tokenizer (libexpat1-dev).
        .systemLibrary(
            name: "CExpat",
            pkgConfig: "expat",
            providers: [.apt(["libexpat1-dev"])]
        ),
        .target(
            name: "XMLCore",
            dependencies: ["CExpat"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "SIPCore",
            dependencies: [
                "XMLCore",
                .product(name: "NIOCore", package: "swift-nio"),
                // MD5 and SHA-256 for digest authentication (RFC 7616), HMAC for its nonces.
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "XMPPCore",
            dependencies: [
                "XMLCore",
                .product(name: "NIOCore", package: "swift-nio"),
                // HMAC-SHA256 for dialback keys (XEP-0185), SHA-1 for the component handshake.
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        // Channel handlers both network edges share (flush coalescing).
        .target(
            name: "StoxNIO",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        // The SIP edge on SwiftNIO: UDP, TCP and TLS transports driving the §17 transaction machines.
        .target(
            name: "SIPEdge",
            dependencies: [
                "SIPCore", "StoxNIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        // The gateway's state in SQLite (GRDB over the system libsqlite3): users, registrations,
        // watcher decisions, pending notices. WAL, append-only migrations.
        .target(
            name: "GatewayStore",
            dependencies: [.product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strictSettings
        ),
        // The SIP domain the gateway serves itself (embedded mode): registrar with digest,
        // location service with several bindings per user, forking delivery with acceptance
        // timeouts, presence.
        .target(
            name: "SIPDomain",
            dependencies: [
                "SIPCore", "SIPEdge", "GatewayStore", "StoxDNS",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // DNS SRV (RFC 2782) over UDP: XMPP (RFC 6120 §3.2) and SIP (RFC 3263) find peers with it.
        .target(
            name: "StoxDNS",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // XMPP server-to-server links on SwiftNIO: STARTTLS, SASL EXTERNAL, dialback.
        .target(
            name: "XMPPFederation",
            dependencies: [
                "XMPPCore", "XMLCore", "StoxDNS", "StoxNIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        // Pure SIP <-> XMPP translation driven by the tables in Mappings/.
        .target(
            name: "Interworking",
            dependencies: ["SIPCore", "XMPPCore", "XMLCore"],
            swiftSettings: strictSettings
        ),
        // The gateway itself: the SIP domain and XMPP federation wired through Interworking, the
        // durable queue, presence subscriptions both ways, configuration, metrics.
        .target(
            name: "Gateway",
            dependencies: [
                "SIPCore", "SIPEdge", "SIPDomain", "XMPPCore", "XMLCore", "XMPPFederation", "Interworking", "GatewayStore", "StoxNIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "stox",
            dependencies: [
                "SIPCore", "XMPPCore", "Interworking", "GatewayStore", "Gateway",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // Micro-benchmarks: `swift run -c release stox-bench`. Figures are printed, never asserted.
        .executableTarget(
            name: "stox-bench",
            dependencies: [
                "SIPCore", "SIPEdge", "XMPPCore", "XMLCore", "CExpat", "XMPPFederation", "GatewayStore",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strictSettings
        ),
        // Test-only helpers: golden-file and manifest readers.
        .target(
            name: "StoxTesting",
            dependencies: ["StoxDNS", .product(name: "NIOPosix", package: "swift-nio")],
            path: "Tests/StoxTesting",
            swiftSettings: strictSettings
        ),
        // The bodies of the libFuzzer targets, shared by the fuzzers and the regression tests.
        .target(
            name: "FuzzTargets",
            dependencies: ["SIPCore", "XMPPCore", "XMLCore", "Interworking"],
            path: "Tests/Fuzz/FuzzTargets",
            swiftSettings: strictSettings
        ),
        .executableTarget(name: "fuzz-sip", dependencies: ["FuzzTargets"], path: "Tests/Fuzz/fuzz-sip"),
        .executableTarget(name: "fuzz-xml", dependencies: ["FuzzTargets"], path: "Tests/Fuzz/fuzz-xml"),
        .executableTarget(name: "fuzz-pidf", dependencies: ["FuzzTargets"], path: "Tests/Fuzz/fuzz-pidf"),
        .testTarget(
            name: "XMLCoreTests",
            dependencies: ["XMLCore", "StoxTesting"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SIPCoreTests",
            dependencies: ["SIPCore", "StoxTesting", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "XMPPCoreTests",
            dependencies: ["XMPPCore", "StoxTesting"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SIPEdgeTests",
            dependencies: ["SIPEdge", "StoxTesting", .product(name: "NIOPosix", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GatewayStoreTests",
            dependencies: ["GatewayStore"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SIPDomainTests",
            dependencies: ["SIPDomain", "SIPEdge", "GatewayStore", "StoxDNS", "StoxTesting", "Gateway", "Interworking",
                           .product(name: "NIOPosix", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "XMPPFederationTests",
            dependencies: ["XMPPFederation", "StoxDNS", "StoxTesting", .product(name: "NIOPosix", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: ["Gateway", "SIPCore", "SIPDomain", "SIPEdge", "GatewayStore", "XMPPFederation", "StoxTesting",
                           .product(name: "NIOPosix", package: "swift-nio"), .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "InterworkingTests",
            dependencies: ["Interworking", "StoxTesting"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "FuzzRegressionTests",
            dependencies: ["FuzzTargets", "StoxTesting"],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
