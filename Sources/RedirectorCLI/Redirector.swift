import ArgumentParser
import RedirectorCore

/// The `redirector` command.
@main
struct Redirector: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redirector",
        abstract: "Send each download to its client's cloud or network mirror.",
        subcommands: [
            CompileCommand.self, UpdateCommand.self, InspectCommand.self, LookupCommand.self, DecideCommand.self, FormatsCommand.self,
            ExportCommand.self, DiffCommand.self, RegionsCommand.self, ServeCommand.self, ProbeCommand.self,
            AnalyzeCommand.self,
            ConformanceCommand.self,
        ])
}

/// A failure with a message for the terminal and exit status 1.
struct CommandFailure: Error, CustomStringConvertible {
    /// The message.
    let description: String
}

/// Opens a snapshot or fails with the loader's message.
func openSnapshot(_ path: String) throws -> Snapshot {
    do {
        return try Snapshot.open(path: path)
    } catch {
        throw CommandFailure(description: "\(error)")
    }
}

/// Prints to standard error.
func printError(_ message: String) {
    var standardError = StandardError()
    print(message, to: &standardError)
}

/// Standard error as a text stream.
struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileOutput.write(string, to: 2)
    }
}
