import Foundation
import PackagePlugin

/// `swift package --allow-writing-to-package-directory build-nginx-module`: builds the
/// self-contained libredirector.so and the NGINX dynamic module against the installed nginx-dev,
/// side by side in out/nginx (the same as scripts/build-library.sh + scripts/build-nginx-module.sh).
@main
struct BuildNginxModule: CommandPlugin {
    func performCommand(context: PluginContext, arguments: [String]) async throws {
        let root = context.package.directoryURL
        for script in ["scripts/build-library.sh", "scripts/build-nginx-module.sh"] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = [root.appendingPathComponent(script).path] + arguments
            process.currentDirectoryURL = root
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                Diagnostics.error("\(script) exited with status \(process.terminationStatus)")
                return
            }
        }
        print("built \(root.appendingPathComponent("out/nginx").path)")
    }
}
