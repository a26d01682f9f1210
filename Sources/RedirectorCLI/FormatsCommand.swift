import ArgumentParser
import RedirectorCompiler

/// `redirector formats`: the importers.
struct FormatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "formats", abstract: "List the source formats compile understands.")

    func run() {
        for importer in SourceImporters.all {
            print("\(importer.format)\t\(importer.summary)")
        }
    }
}
