// swift-tools-version: 6.1
import PackageDescription

/// `nonzeroBitCount` compiles to one `popcnt` only when the CPU feature is enabled.
let hotPathSettings: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-mpopcnt"])]

let package = Package(
    name: "Redirector",
    products: [
        .library(name: "RedirectorCore", targets: ["RedirectorCore"]),
        .library(name: "RedirectorCompiler", targets: ["RedirectorCompiler"]),
        /// The C ABI declared in `include/redirector.h`; `scripts/build-library.sh` links it
        /// self-contained as `libredirector.so`.
        .library(name: "RedirectorABI", type: .dynamic, targets: ["RedirectorABI"]),
        .executable(name: "redirector", targets: ["RedirectorCLI"]),
        /// The conformance harness's in-process core backend (a line protocol on stdin/stdout).
        .executable(name: "redirector-conformance-driver", targets: ["RedirectorConformanceDriver"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        /// Addresses, the longest-prefix matcher, policy, decisions and the snapshot format.
        /// Pure Swift: no Foundation, no I/O on the request path.
        .target(name: "RedirectorCore", swiftSettings: hotPathSettings),
        /// zlib, for gzip-compressed pyasn dumps.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        /// Source importers and the config → snapshot compiler.
        .target(
            name: "RedirectorCompiler",
            dependencies: ["RedirectorCore", "CZlib", .product(name: "Yams", package: "Yams")]
        ),
        /// `include/redirector.h` as a Clang module: the one declaration of the ABI's structs and codes.
        .systemLibrary(name: "CRedirector", path: "Sources/CRedirector"),
        /// `@_cdecl` entry points of libredirector.so, with the layouts the compiler reads from the header.
        .target(name: "RedirectorABI", dependencies: ["RedirectorCore", "CRedirector"], swiftSettings: hotPathSettings),
        /// The `redirector` command-line tool.
        .executableTarget(
            name: "RedirectorCLI",
            dependencies: [
                "RedirectorCore", "RedirectorCompiler",
                "RedirectorSidecar",
                "RedirectorHealth",
                "RedirectorPresence",
                "RedirectorAnalysis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        /// `redirector-conformance-driver`: decides the harness's requests with RedirectorCore in-process.
        .executableTarget(
            name: "RedirectorConformanceDriver",
            dependencies: ["RedirectorCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        /// The health prober (`redirector probe`, `redirector serve --probe`): HTTP checks of pool members,
        /// rise/fall, and the health state it publishes in memory and as a state file.
        .target(
            name: "RedirectorHealth",
            dependencies: [
                "RedirectorCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        /// Presence checks of `verify` routes: a HEAD of the redirect's URL, cached, one in flight per URL.
        .target(
            name: "RedirectorPresence",
            dependencies: [
                "RedirectorCore", "RedirectorHealth",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        /// `redirector serve`: Envoy ext_authz HTTP, forward-auth, nginx auth_request and standalone redirects.
        .target(
            name: "RedirectorSidecar",
            dependencies: [
                "RedirectorCore",
                "RedirectorHealth",
                "RedirectorPresence",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "RedirectorSidecarTests",
            dependencies: [
                "RedirectorSidecar", "RedirectorCore", "RedirectorHealth", "RedirectorPresence",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        /// `redirector analyze`: access-log parsers, streaming aggregation and reports.
        .target(name: "RedirectorAnalysis", dependencies: ["RedirectorCore", "CZlib"], swiftSettings: hotPathSettings),
        .testTarget(
            name: "RedirectorAnalysisTests",
            dependencies: ["RedirectorAnalysis", "RedirectorCore", "RedirectorCompiler", "CZlib", "RedirectorTestSupport"]),
        /// `swift package build-nginx-module`: libredirector.so and the NGINX module, side by side.
        .plugin(
            name: "BuildNginxModule",
            capability: .command(
                intent: .custom(verb: "build-nginx-module", description: "Build libredirector.so and the NGINX dynamic module into out/nginx"),
                permissions: [.writeToPackageDirectory(reason: "writes the library and module under out/")]
            )
        ),
        /// `swift package conformance`: the conformance suite on every backend (Tests/Conformance,
        /// docs/conformance.md); non-zero exit on any failure.
        .plugin(
            name: "Conformance",
            capability: .command(
                intent: .custom(
                    verb: "conformance",
                    description: "Run the conformance suite on every backend (library, C ABI, NGINX, Lua, sidecar, Envoy, Caddy) and write a report to out/conformance")
                // No declared permissions: on Linux plugins are not sandboxed, and declaring them would make
                // the bare `swift package conformance` refuse to run. On macOS: `swift package --disable-sandbox conformance`.
            )
        ),
        /// `RedirectorMatcherBenchmark`: the radix tree, format 1's poptrie and format 2's tries side by
        /// side on one table (scripts/bench-core.sh runs it).
        .executableTarget(
            name: "RedirectorMatcherBenchmark", dependencies: ["RedirectorCore", "RedirectorTestSupport"], path: "Benchmarks/matcher",
            swiftSettings: hotPathSettings),
        /// Helpers every test target shares: seeded generator, repository paths, address helpers.
        .target(name: "RedirectorTestSupport", dependencies: ["RedirectorCore"], path: "Tests/RedirectorTestSupport"),
        .testTarget(name: "RedirectorCoreTests", dependencies: ["RedirectorCore", "RedirectorTestSupport"]),
        .testTarget(name: "RedirectorCompilerTests", dependencies: ["RedirectorCompiler", "RedirectorCore", "RedirectorTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
