import ArgumentParser
import RedirectorCompiler

/// `redirector regions`: the built-in region → location table `nearestRegion` uses.
struct RegionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "regions",
        abstract: "Print the built-in cloud region locations (CSV: provider,region,city,latitude,longitude).")

    func run() {
        print("provider,region,city,latitude,longitude")
        for location in RegionLocations.all {
            print("\(location.provider),\(location.region),\(location.city),\(location.latitude),\(location.longitude)")
        }
    }
}
