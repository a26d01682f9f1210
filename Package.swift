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
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
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
        /// `@_cdecl` entry points of libredirector.so.
        .target(name: "RedirectorABI", dependencies: ["RedirectorCore"], swiftSettings: hotPathSettings),
        /// The `redirector` command-line tool.
        .executableTarget(
            name: "RedirectorCLI",
            dependencies: [
                "RedirectorCore", "RedirectorCompiler",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "RedirectorCoreTests", dependencies: ["RedirectorCore"]),
        .testTarget(name: "RedirectorCompilerTests", dependencies: ["RedirectorCompiler", "RedirectorCore"]),
    ],
    swiftLanguageModes: [.v6]
)
